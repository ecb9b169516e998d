using System.Globalization;
using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Gateway.Core.Scheduling;
using Simulator.Engine;
using Simulator.Workload;
using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>
/// One discrete-event replay of a workload under one (routing, scheduling, retention) combination, with fresh
/// policy and engine objects. Events are ordered by (time, sequence); virtual time flows through a
/// <see cref="VirtualTimeProvider"/> shared by the engines and the policies. The parts: <see cref="SessionLoop"/>
/// (closed-loop sessions and their arrivals), <see cref="SimFleet"/> (the workers' step loops),
/// <see cref="SimDispatch"/> (gateway queue → routing → engine, under the simulator's capacity rule),
/// <see cref="TenantLedger"/> (fairness accounting) and <see cref="RunRecorder"/> (per-request measurements). This
/// type wires them and handles the request events: arrival, step results, completion and the retention policy's hooks.
/// </summary>
public sealed class SimulationRun
{
    private readonly SimWorkload _workload;
    private readonly Scenario _scenario;
    private readonly VirtualTimeProvider _time = new();
    private readonly EventQueue<SimEvent> _events = new();
    private readonly IRoutingPolicy _routing;
    private readonly IRequestScheduler _scheduler;
    private readonly LocalityPick _pick;
    private readonly ReservedCapacity _reserve;
    private readonly AgentRetentionPlanner _retention;
    private double _renewCheckAt = double.PositiveInfinity;
    private readonly Gateway.Core.Agents.ResumedTurnPriority? _programPriority;
    private readonly CostModel _cost = CostModel.Default;
    private readonly Func<string, double> _weightOf;
    private readonly SimFleet _fleet;
    private readonly SessionLoop _sessions;
    private readonly SimDispatch _dispatch;
    private readonly TenantLedger _ledger;
    private readonly RunRecorder _recorder = new();
    private readonly Dictionary<string, SimRequest> _live = new(StringComparer.Ordinal);
    private readonly string _routingName, _schedulingName, _retentionName;
    private long _nextRequestId;

    /// <summary>Prepares a run.</summary>
    public SimulationRun(SimWorkload workload, Scenario scenario, string routing, string scheduling, string retention)
    {
        _workload = workload;
        _scenario = scenario;
        _routingName = routing;
        _schedulingName = scheduling;
        _retentionName = retention;
        var weights = SchedulingPolicyContext.ParseWeights(scenario.TenantWeights);
        var schedulingContext = new SchedulingPolicyContext
        {
            Time = _time,
            Weights = weights,
            Locality = LocalityOptions.Default with { LagBound = scenario.LagBound },
        };
        _weightOf = schedulingContext.WeightOf;
        _routing = RoutingPolicies.Create(routing, new RoutingPolicyContext { Time = _time, Seed = scenario.Seed, BlockSize = scenario.BlockSize });
        _scheduler = SchedulingPolicies.Create(scheduling, schedulingContext);
        _pick = new LocalityPick(_routing, scenario.Locality, sendToPickedWorker: scenario.PickedWorker);
        _reserve = new ReservedCapacity(scenario.Reserve, scenario.OverShareFactor);
        _retention = RetentionPlanners.Create(retention, _time, new Gateway.Core.Agents.RetentionOptions
        {
            MemoryCostWeight = scenario.RetentionCostWeight,
            PinBudgetFraction = scenario.RetentionPinBudget,
            MaxRenewals = scenario.RetentionRenewals,
            EvictionAge = Gateway.Core.Agents.RetentionPolicies.TryParseEvictionAge(scenario.RetentionEvictionAge, out var evictionAge) ? evictionAge : default,
            PinGuard = scenario.RetentionGuard != "off",
            HbmPins = scenario.RetentionHbmPins == "on",
        });
        _programPriority = scenario.ProgramPriority == "off" ? null
            : new Gateway.Core.Agents.ResumedTurnPriority(new Gateway.Core.Agents.ProgramPriorityOptions { PinnedOnly = scenario.ProgramPriority == "pinned" });

        _fleet = new SimFleet(scenario, _time, _events, _live);

        // Precise KV index: policies that consume worker KV events (kv-aware, dynamo-kv, llm-d-precise) get them relayed
        // from the engines at each step's end (the live gateway reads the same events over SSE).
        if (scenario.KvEvents && _routing is IKvEventConsumer { Precise: { } precise })
        {
            _fleet.RelayKvEventsTo(precise);
        }

        string[] tenants = [.. workload.Tenants];
        var tenantIndex = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tenants.Length; i++)
        {
            tenantIndex[tenants[i]] = i;
        }

        _ledger = new TenantLedger(tenants, _weightOf);
        _sessions = new SessionLoop(workload, t => tenantIndex[t], _events);
        _dispatch = new SimDispatch(scenario, _fleet, _routing, _scheduler, _pick, _reserve, _ledger, _recorder, _live, Reject);
    }

    /// <summary>Runs to completion and returns the metrics.</summary>
    public RunResult Run()
    {
        var wall = System.Diagnostics.Stopwatch.StartNew();
        _sessions.ScheduleRoots(_workload.Roots);
        while (_events.TryDequeue(out var e, out double t))
        {
            _recorder.Events++;
            _time.Now = t;
            switch (e.Kind)
            {
                case SimEventKind.StartSession:
                    _sessions.Start(e.Session!, t);
                    break;
                case SimEventKind.Arrival:
                    Arrive(e.Session!, e.Turn, t);
                    break;
                case SimEventKind.StepDone:
                    StepDone(e.Worker, e.Step!, t);
                    break;
                case SimEventKind.Retry:
                    _fleet.RetryDue(e.Worker);
                    _fleet.Kick(e.Worker, t);
                    break;
                case SimEventKind.Prefetch:
                    _retention.Prefetch(e.Worker, e.SessionId!);
                    _fleet.Kick(e.Worker, t);
                    break;
                case SimEventKind.RenewCheck:
                    _renewCheckAt = double.PositiveInfinity;
                    _retention.OnPinsExpiring();
                    _fleet.SampleAllPins(t);
                    break;
            }

            ScheduleRenewCheck(t);
        }

        _ledger.Close(_time.Now);
        _fleet.SampleAllPins(_time.Now);
        var result = BuildResult();
        result.WallSeconds = wall.Elapsed.TotalSeconds;
        return result;
    }

    // A pin the retention policy may renew gets a check RenewLeadSeconds before its expiry (policies that never renew
    // report none, so their runs are event-for-event unchanged).
    private void ScheduleRenewCheck(double t)
    {
        if (_retention.SecondsToRenewalCheck is not { } wait)
        {
            return;
        }

        double due = t + Math.Max(0, wait);
        if (due < _renewCheckAt)
        {
            _renewCheckAt = due;
            _events.Schedule(due, SimEvent.RenewCheck());
        }
    }

    private void Arrive(SessionState s, int k, double t)
    {
        var turn = s.Session.Turns[k];
        var hashes = HashMapper.Map(turn, s.Session.Salt, _scenario.BlockSize);
        long id = _nextRequestId++;
        string engineId = "q" + id.ToString(CultureInfo.InvariantCulture);
        string? sessionId = s.Session.OneShot ? null : s.Session.Id;
        var r = new SimRequest
        {
            Id = id,
            EngineId = engineId,
            Session = s,
            Turn = k,
            Trace = turn,
            Arrival = t,
            Hashes = hashes,
            Output = Math.Max(1, turn.Out),
            Route = new RouteRequest
            {
                RequestId = id,
                TenantPath = s.Session.Tenant,
                SessionId = sessionId,
                BlockHashes = hashes,
                BlockSize = _scenario.BlockSize,
                PromptTokens = turn.In,
                ExpectedOutputTokens = Math.Max(1, turn.Out),
            },
        };
        var priority = Gateway.Core.Agents.TurnPriority.Fresh;
        if (k > 0 && s.PreviousHashes is { } prev)
        {
            int common = 0;
            int n = Math.Min(prev.Length, hashes.Length);
            while (common < n && prev[common] == hashes[common])
            {
                common++;
            }

            r.ReusableTokens = common * _scenario.BlockSize;
            r.PreviousWorker = s.LastWorker;
            r.AfterToolGap = s.LastStop == "tool_use";
            r.CachedOnArrival = s.LastWorker >= 0 ? _fleet.Workers[s.LastWorker].Engine.CachedPrefixBlocks(hashes.AsSpan(0, common)) * _scenario.BlockSize : 0;
            var arrival = _retention.OnTurnArrived(new TurnArrivedContext { Now = t, SessionId = s.Session.Id, GapSeconds = t - s.Base });
            r.PinFate = arrival.Fate;
            if (_programPriority is not null)
            {
                priority = _programPriority.Decide(arrival.Gap);
                _recorder.ResumedBoosted += priority.Resumed ? 1 : 0;
            }

            // Pins may have changed (released / re-taken): integrate up to now with the old count.
            _fleet.SampleAllPins(t);
        }

        r.EnginePriority = priority.EnginePriority;
        r.Queued = new QueuedRequest
        {
            Id = id,
            TenantPath = s.Session.Tenant,
            SessionId = sessionId,
            PromptTokens = turn.In,
            ExpectedOutputTokens = r.Output,
            EnqueuedTimestamp = _time.GetTimestamp(),
            Route = r.Route,
            Payload = r,
            ResumeCredit = priority.QueueCredit,
        };

        s.PreviousHashes = hashes;
        _recorder.Arrived(t);
        _ledger.Enqueued(s.Tenant, t);
        _scheduler.Enqueue(r.Queued);
        _dispatch.Run(t);
    }

    private void Reject(SimRequest r, double t)
    {
        _recorder.Refused(r, t);
        _scheduler.Complete(r.Queued, 0, 0);
        _reserve.Complete(r.Queued);
        _sessions.TurnDone(r.Session, r.Turn, t);
    }

    private void StepDone(int worker, StepResult step, double t)
    {
        var w = _fleet.Workers[worker];
        _fleet.StepEnded(worker);
        bool contended = _ledger.Contended;
        double delivered = 0;
        int bucket = _ledger.Bucket(t);
        var events = step.Events;
        for (int i = 0; i < events.Count; i++)
        {
            var ev = events[i];
            if (!_live.TryGetValue(ev.RequestId, out var r))
            {
                continue;
            }

            int tenant = r.Session.Tenant;
            double service;
            switch (ev.Kind)
            {
                case SequenceEventKind.FirstToken:
                    r.FirstToken = t;
                    r.Cached = ev.CachedTokens;
                    _recorder.ReloadedTokens += ev.ReloadedTokens;
                    r.Emitted = 1;
                    w.Info.OnFirstToken(r.PredictedUncached, r.Trace.In);
                    r.ReachedDecode = true;
                    service = _cost.Prefill(r.Trace.In, ev.CachedTokens) + _cost.Output(1);
                    _scheduler.ChargeOutput(r.Queued, 1);
                    break;
                case SequenceEventKind.Token:
                    r.Emitted++;
                    service = _cost.Output(1);
                    _scheduler.ChargeOutput(r.Queued, 1);
                    break;
                case SequenceEventKind.Finished:
                    Finish(r, w, t);
                    continue;
                default:
                    continue;
            }

            delivered += _ledger.Serve(tenant, bucket, service, contended);
        }

        if (contended && delivered > 0)
        {
            _ledger.Entitle(delivered);
        }

        _fleet.Kick(worker, t);
        _dispatch.Run(t, worker);
    }

    private void Finish(SimRequest r, WorkerSlot w, double t)
    {
        _live.Remove(r.EngineId);
        r.Finish = t;
        w.Info.OnCompleted(r.PredictedUncached, r.Trace.In, r.ReachedDecode);
        _routing.OnCompleted(r.Route, w.Info, r.Cached);
        _scheduler.Complete(r.Queued, r.Cached, r.Emitted);
        _reserve.Complete(r.Queued);
        double ttft = _recorder.Served(r, t, _scenario.RequestsOut);
        _ledger.Completed(r.Session.Tenant, ttft);
        var s = r.Session;
        s.LastWorker = r.Worker;
        s.LastStop = r.Trace.Stop;
        if (!s.Session.OneShot)
        {
            _retention.OnTurnCompleted(new TurnCompletedContext
            {
                Now = t,
                SessionId = s.Session.Id,
                Tenant = s.Session.Tenant,
                Stop = r.Trace.Stop,
                Tool = r.Trace.Tool,
                LastTurn = r.Turn == s.Session.Turns.Count - 1,
                Worker = r.Worker,
                Engine = w.Engine,
                BlockHashes = r.Hashes,
                AgentKind = s.Session.Parent is null ? "main" : "subagent",
                NextThinkSeconds = r.Turn + 1 < s.Session.Turns.Count ? s.Session.Turns[r.Turn + 1].Think : double.NaN,
            });
            foreach (var (delay, worker, session) in _retention.PendingPrefetches)
            {
                _events.Schedule(t + delay, SimEvent.Prefetch(worker, session));
            }

            _retention.PendingPrefetches.Clear();
            _fleet.SampleAllPins(t);
        }

        _sessions.TurnDone(s, r.Turn, t);
    }

    private RunResult BuildResult()
    {
        var (tenants, jain) = _ledger.Results();
        var (loadMaxOverMin, preemptions) = _fleet.Load();
        var ttftSorted = _recorder.TtftSamples();
        var hfair = _scheduler as HierarchicalFairScheduler;
        return new RunResult
        {
            Routing = _routingName,
            Scheduling = _schedulingName,
            Retention = _scenario.RetentionLabel(_retentionName),
            RetentionGuard = _scenario.RetentionGuard != "off",
            Seed = _scenario.Seed,
            TtftMs = _recorder.Ttft(),
            TpotMs = _recorder.Tpot(),
            E2eMs = _recorder.E2e(),
            PrefixHitRatio = _recorder.PrefixHitRatio,
            ThroughputTokensPerSecond = _recorder.OutputTokensPerSecond,
            Completed = _recorder.Completed,
            Rejected = _recorder.Rejected,
            WorkerLoadMaxOverMin = loadMaxOverMin,
            JainIndex = jain,
            ContendedSeconds = _ledger.ContendedSeconds,
            MakespanSeconds = _recorder.Span,
            Preemptions = preemptions,
            HostReloadedTokens = _recorder.ReloadedTokens,
            HostRetains = _retention.HostRetains,
            PrefetchedBlocks = _retention.PrefetchedBlocks,
            HostKvBlocks = _fleet.Workers.Count > 0 ? _fleet.Workers[0].Engine.HostKvBlocksTotal : 0,
            Tenants = tenants,
            ReprefillTokensResumed = _recorder.ReprefillTokens,
            ResumedAfterTool = _recorder.ResumedTool,
            ResumedAfterHuman = _recorder.ResumedHuman,
            RetentionStats = _retention.Stats,
            ProgramPriority = _scenario.ProgramPriority,
            ResumedTurnsBoosted = _recorder.ResumedBoosted,
            PinnedBlockSeconds = _fleet.PinnedBlockSeconds,
            PinnedUnusedBlockSeconds = _retention.PinnedUnusedBlockSeconds,
            TtftSamplesMs = ttftSorted,
            ServiceOverTime = _ledger.ServiceOverTime,
            ServiceBucketSeconds = TenantLedger.BucketSeconds,
            Events = _recorder.Events,
            Requests = _recorder.Records,
            AgentWorkingSet = _recorder.AgentWorkingSet(_sessions.Sessions, _fleet.PoolTokens),
            Locality = _pick.Enabled,
            LagBound = _scenario.LagBound,
            LocalityPicks = hfair?.LocalityPicks ?? 0,
            LocalityReorders = hfair?.LocalityReorders ?? 0,
            MaxDispatchLag = hfair?.MaxDispatchLag ?? 0,
            Reserve = hfair is not null ? _reserve.Reserve : 0, // fcfs and vtc have no notion of share
            ReservedPicks = hfair is not null ? _reserve.ReservedPicks : 0,
            ReserveLent = _reserve.Lent,
            ReserveReclaimed = _reserve.Reclaimed,
            UrgentDispatches = _recorder.UrgentDispatches,
        };
    }
}
