using System.Globalization;
using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Gateway.Core.Scheduling;
using Simulator.Engine;
using Simulator.Traces;
using Simulator.Workload;
using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>
/// One discrete-event replay of a workload under one (routing, scheduling, retention) combination, with fresh
/// policy and engine objects. Events are ordered by (time, sequence); virtual time flows through a
/// <see cref="VirtualTimeProvider"/> shared by the engines and the policies.
/// <para>Per worker, a step loop: while its engine has work, <c>Step()</c> is called at time t and its events are
/// delivered at t + Duration (first token → TTFT, tokens → TPOT and service, finished → E2E, routing and scheduler
/// callbacks), then the next step starts at once. Requests wait in the gateway queue (the scheduler) and are
/// dispatched while some worker has capacity: fewer than <see cref="Scenario.MaxWaitingPerWorker"/> requests waiting
/// in its engine (not yet admitted to the running batch) and fewer than MaxRunningSequences waiting + running.
/// Workers without capacity are marked ineligible (<see cref="WorkerInfo.Draining"/>) for that routing decision.</para>
/// </summary>
public sealed class SimulationRun
{
    private const double ServiceBucketSeconds = 1.0;
    private const double StuckRetrySeconds = 0.05;
    private const int StuckRetryLimit = 20_000;
    private const double PinSampleSeconds = 0.1;

    private readonly SimWorkload _workload;
    private readonly Scenario _scenario;
    private readonly VirtualTimeProvider _time = new();
    private readonly EventQueue<Event> _events = new();
    private readonly IRoutingPolicy _routing;
    private readonly IRequestScheduler _scheduler;
    private readonly LocalityPick _pick;
    private readonly ReservedCapacity _reserve;
    private int _dispatchCursor;
    private readonly AgentRetentionPlanner _retention;
    private double _renewCheckAt = double.PositiveInfinity;
    private readonly Gateway.Core.Agents.ResumedTurnPriority? _programPriority;
    private long _resumedBoosted;
    private long _urgentDispatches;
    private readonly CostModel _cost = CostModel.Default;
    private readonly Func<string, double> _weightOf;
    private readonly WorkerSlot[] _workers;
    private readonly List<WorkerInfo> _infos = [];
    private readonly SessionState[] _sessions;

    // Denning window of the agent working-set report: a tool-gap scale (median ~9 s, p90 ~71 s in the WEKA traces).
    private const double WorkingSetTauSeconds = 60;
    private readonly Dictionary<string, SimRequest> _live = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> _tenantIndex = new(StringComparer.Ordinal);
    private readonly string[] _tenants;
    private readonly string _routingName, _schedulingName, _retentionName;

    // metrics
    private readonly List<double> _ttft = [], _tpot = [], _e2e = [];
    private readonly List<double>[] _tenantTtft;
    private readonly int[] _tenantCompleted;
    private readonly double[] _tenantService, _tenantContendedService, _tenantEntitled;
    private readonly int[] _tenantQueued, _tenantActive;
    private readonly List<double[]> _serviceBuckets = [];
    private int _tenantsQueued;
    private double _lastContentionChange;
    private double _contendedSeconds;
    private double _contendedTotal;
    private double[]? _entitledCache;
    private long _nextRequestId;
    private long _promptTokens, _cachedTokens, _outputTokens;
    private int _completed, _rejected;
    private double _firstArrival = double.NaN, _lastFinish;
    private double _reprefill;
    private long _reloadedTokens;
    private readonly ResumedStats _resumedTool = new(), _resumedHuman = new();
    private double _pinnedBlockSeconds;
    private long _eventCount;
    private readonly PreciseIndex? _kvConsumer;
    private readonly List<Worker.Engine.KvEvent> _kvBuffer = [];
    private readonly List<RequestRecord> _records = [];

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
        _pick = new LocalityPick(_routing, scenario.Locality);
        _reserve = new ReservedCapacity(scenario.Reserve, scenario.OverShareFactor);
        _retention = RetentionPlanners.Create(retention, _time, new Gateway.Core.Agents.RetentionOptions
        {
            MemoryCostWeight = scenario.RetentionCostWeight,
            PinBudgetFraction = scenario.RetentionPinBudget,
            MaxRenewals = scenario.RetentionRenewals,
            EvictionAge = Gateway.Core.Agents.RetentionPolicies.TryParseEvictionAge(scenario.RetentionEvictionAge, out var evictionAge) ? evictionAge : default,
        });
        _programPriority = scenario.ProgramPriority == "off" ? null
            : new Gateway.Core.Agents.ResumedTurnPriority(new Gateway.Core.Agents.ProgramPriorityOptions { PinnedOnly = scenario.ProgramPriority == "pinned" });

        var profile = ModelProfiles.Get(scenario.Profile);
        _workers = new WorkerSlot[scenario.Workers];
        for (int i = 0; i < scenario.Workers; i++)
        {
            var engine = new LlmEngine(new EngineOptions
            {
                Profile = profile,
                KvBlocks = scenario.KvBlocks,
                HostKvBlocks = scenario.HostKvBlocks,
                BlockSize = scenario.BlockSize,
                MaxBatchTokens = scenario.MaxBatchTokens,
                LongPrefillTokenThreshold = scenario.LongPrefillTokenThreshold,
                MaxRunningSequences = scenario.MaxRunningSequences,
                MaxModelLength = scenario.MaxModelLength,
                MaxPinnedFraction = scenario.MaxPinnedFraction,
                ExclusivePriorityPrefill = scenario.ExclusivePriorityPrefill,
                LowPriorityPrefillTokens = scenario.LowPriorityPrefillTokens,
                SerialUrgentPrefill = scenario.SerialUrgentPrefill,
            }, _time);
            var info = new WorkerInfo("worker-" + i.ToString(CultureInfo.InvariantCulture), i)
            {
                KvBlocksTotal = engine.KvBlocksTotal,
                PrefillTokensPerSecond = profile.PrefillTokensPerSecond,
                DecodeStepSeconds = profile.DecodeStepSeconds(16, 16 * 2048),
                HostReloadSecondsPerToken = engine.HostKvBlocksTotal > 0 ? profile.HostLoadSeconds(1) : 0,
            };
            _workers[i] = new WorkerSlot(engine, info);
            _infos.Add(info);
        }

        // Precise KV index: policies that consume worker KV events (kv-aware, dynamo-kv, llm-d-precise) get them relayed
        // from the engines at each step's end (the live gateway reads the same events over SSE).
        if (scenario.KvEvents && _routing is IKvEventConsumer { Precise: { } precise })
        {
            _kvConsumer = precise;
            foreach (var info in _infos)
            {
                info.PublishesKvEvents = true;
            }
        }

        _tenants = [.. workload.Tenants];
        for (int i = 0; i < _tenants.Length; i++)
        {
            _tenantIndex[_tenants[i]] = i;
        }

        _tenantTtft = new List<double>[_tenants.Length];
        for (int i = 0; i < _tenants.Length; i++)
        {
            _tenantTtft[i] = [];
        }

        _tenantCompleted = new int[_tenants.Length];
        _tenantService = new double[_tenants.Length];
        _tenantContendedService = new double[_tenants.Length];
        _tenantEntitled = new double[_tenants.Length];
        _tenantQueued = new int[_tenants.Length];
        _tenantActive = new int[_tenants.Length];

        _sessions = new SessionState[workload.Sessions.Count];
        foreach (var s in workload.Sessions)
        {
            _sessions[s.Index] = new SessionState(s, _tenantIndex[s.Tenant]);
        }
    }

    /// <summary>Runs to completion and returns the metrics.</summary>
    public RunResult Run()
    {
        var wall = System.Diagnostics.Stopwatch.StartNew();
        foreach (var root in _workload.Roots)
        {
            _events.Schedule(root.Start, Event.StartSession(_sessions[root.Index]));
        }

        while (_events.TryDequeue(out var e, out double t))
        {
            _eventCount++;
            _time.Now = t;
            switch (e.Kind)
            {
                case EventKind.StartSession:
                    StartSession(e.Session!, t);
                    break;
                case EventKind.Arrival:
                    Arrive(e.Session!, e.Turn, t);
                    break;
                case EventKind.StepDone:
                    StepDone(e.Worker, e.Step!, t);
                    break;
                case EventKind.Retry:
                    _workers[e.Worker].RetryPending = false;
                    Kick(e.Worker, t);
                    break;
                case EventKind.Prefetch:
                    _retention.Prefetch(e.Worker, e.SessionId!);
                    Kick(e.Worker, t);
                    break;
                case EventKind.RenewCheck:
                    _renewCheckAt = double.PositiveInfinity;
                    _retention.OnPinsExpiring();
                    foreach (var w in _workers)
                    {
                        SamplePins(w, t, force: true);
                    }

                    break;
            }

            ScheduleRenewCheck(t);
        }

        UpdateContention(_time.Now);
        foreach (var w in _workers)
        {
            SamplePins(w, _time.Now, force: true);
        }

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
            _events.Schedule(due, Event.RenewCheck());
        }
    }

    // ---------------- sessions (closed loop) ----------------

    private void StartSession(SessionState s, double t)
    {
        s.Started = true;
        s.Base = t;
        foreach (var child in s.Session.Children)
        {
            if (child.ParentTurn < 0)
            {
                SpawnChild(child, t);
            }
        }

        TryIssue(s);
    }

    private void SpawnChild(SimSession child, double t) => StartSession(_sessions[child.Index], t);

    private void TryIssue(SessionState s)
    {
        int k = s.Issued;
        if (!s.Started || k >= s.Session.Turns.Count || s.Completed != k || s.Blocking[k] > 0)
        {
            return;
        }

        s.Issued++;
        double at = Math.Max(s.Base, s.BlockingDoneAt[k]) + s.Session.Turns[k].Think;
        _events.Schedule(at, Event.Arrival(s, k));
    }

    private void TurnDone(SessionState s, int k, double t)
    {
        s.Completed = k + 1;
        s.Base = t;
        foreach (var child in s.Session.Children)
        {
            if (child.ParentTurn == k)
            {
                SpawnChild(child, t);
            }
        }

        if (s.Completed < s.Session.Turns.Count)
        {
            TryIssue(s);
        }
        else
        {
            CheckSessionDone(s, t);
        }
    }

    private void CheckSessionDone(SessionState s, double t)
    {
        if (s.Done || s.Completed < s.Session.Turns.Count || s.OpenChildren > 0)
        {
            return;
        }

        s.Done = true;
        if (s.Session.Parent is { } parent)
        {
            var p = _sessions[parent.Index];
            int idx = s.Session.ParentTurn + 1;
            p.Blocking[idx]--;
            p.BlockingDoneAt[idx] = Math.Max(p.BlockingDoneAt[idx], t);
            p.OpenChildren--;
            if (idx < p.Session.Turns.Count)
            {
                TryIssue(p);
            }
            else
            {
                CheckSessionDone(p, t);
            }
        }
    }

    // ---------------- requests ----------------

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
            r.CachedOnArrival = s.LastWorker >= 0 ? _workers[s.LastWorker].Engine.CachedPrefixBlocks(hashes.AsSpan(0, common)) * _scenario.BlockSize : 0;
            var arrival = _retention.OnTurnArrived(new TurnArrivedContext { Now = t, SessionId = s.Session.Id, GapSeconds = t - s.Base });
            r.PinFate = arrival.Fate;
            if (_programPriority is not null)
            {
                priority = _programPriority.Decide(arrival.Gap);
                _resumedBoosted += priority.Resumed ? 1 : 0;
            }

            // Pins may have changed (released / re-taken): integrate up to now with the old count.
            foreach (var w in _workers)
            {
                SamplePins(w, t, force: true);
            }
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
        if (double.IsNaN(_firstArrival))
        {
            _firstArrival = t;
        }

        UpdateContention(t);
        int tenant = s.Tenant;
        if (_tenantQueued[tenant]++ == 0)
        {
            _tenantsQueued++;
            _entitledCache = null;
        }

        _tenantActive[tenant]++;

        _scheduler.Enqueue(r.Queued);
        TryDispatch(t);
    }

    private bool HasCapacity(WorkerSlot w) =>
        w.Engine.WaitingCount < _scenario.MaxWaitingPerWorker &&
        w.Engine.WaitingCount + w.Engine.RunningCount < _scenario.MaxRunningSequences &&
        (_scenario.MaxPendingPrefillTokens <= 0 || w.Info.PendingPrefillTokens < _scenario.MaxPendingPrefillTokens) &&
        (_scenario.KvHighWatermark <= 0 || KvUse(w) < _scenario.KvHighWatermark);

    private static double KvUse(WorkerSlot w)
    {
        var st = w.Engine.GetState();
        return st.KvBlocksTotal == 0 ? 0 : (double)st.KvBlocksUsed / st.KvBlocksTotal;
    }

    /// <summary>
    /// Dispatches while some worker has capacity. Each pick is made for one worker with capacity (the one that just
    /// finished a step first, then in rotation) through <see cref="LocalityPick"/>, the gateway's dispatch step: hfair
    /// prefers, among requests within its lag bound, the one with the most tokens predicted cached on that worker.
    /// Routing then places the request among the workers with capacity.
    /// </summary>
    private void TryDispatch(double t, int freed = -1)
    {
        if (freed >= 0)
        {
            _dispatchCursor = freed;
        }

        while (_scheduler.Count > 0)
        {
            int target = -1, free = 0;
            for (int k = 0; k < _workers.Length; k++)
            {
                int i = (_dispatchCursor + k) % _workers.Length;
                var w = _workers[i];
                bool cap = HasCapacity(w);
                w.Info.Draining = !cap;
                if (cap)
                {
                    free++;
                    if (target < 0)
                    {
                        target = i;
                    }
                }
            }

            QueuedRequest? q;
            int only = -1;
            if (target < 0)
            {
                // No capacity anywhere: a within-share request may take back a reserved slot lent to an over-share one,
                // on the borrower's worker, where its engine priority puts it first.
                QueuedRequest? borrower = null;
                q = _scenario.Reserve > 0 ? _reserve.Reclaim(_scheduler, out borrower) : null;
                if (q is null || borrower is null)
                {
                    break;
                }

                // The worker nearest to taking work: least prompt still to prefill (the pending-prefill rule's measure).
                only = 0;
                for (int k = 1; k < _workers.Length; k++)
                {
                    if (_workers[k].Info.PendingPrefillTokens < _workers[only].Info.PendingPrefillTokens)
                    {
                        only = k;
                    }
                }

                target = only;
            }
            else
            {
                q = _reserve.Next(_scheduler, free, _pick, _workers[target].Info);
            }

            if (q is null)
            {
                break;
            }

            var r = (SimRequest)q.Payload!;
            UpdateContention(t);
            if (--_tenantQueued[r.Session.Tenant] == 0)
            {
                _tenantsQueued--;
                _entitledCache = null;
            }

            // The engines' pools and queues as a worker's state poll would report them (memory-aware placement reads free
            // blocks, llm-d's scorers KV usage and waiting requests).
            foreach (var w in _workers)
            {
                w.Info.KvBlocksFree = w.Engine.KvBlocksFree;
                w.Info.KvUsage = (double)w.Engine.KvBlocksUsed / w.Engine.KvBlocksTotal;
                w.Info.ReportedWaiting = w.Engine.WaitingCount;
                w.Info.ReportedRunning = w.Engine.RunningCount;
                w.Info.InFlightAtReport = w.Info.InFlight;
                if (only >= 0)
                {
                    w.Info.Draining = w.Info.Index != only;
                }
            }

            var decision = _routing.Route(r.Route, _infos);
            if (decision.WorkerIndex < 0)
            {
                Reject(r, t);
                continue;
            }

            var slot = _workers[decision.WorkerIndex];
            bool urgent = _reserve.IsUrgent(_scheduler, q);
            _urgentDispatches += urgent ? 1 : 0;
            r.SentPriority = ReservedCapacity.EnginePriority(r.EnginePriority, urgent, _scenario.UnderSharePriority);
            r.StepInProgress = slot.Busy ? slot.StepEndsAt - t : 0;
            if (!slot.Engine.Submit(new EngineRequest
            {
                Id = r.EngineId,
                PromptTokens = r.Trace.In,
                BlockHashes = r.Hashes,
                OutputTokens = r.Output,
                SessionId = r.Route.SessionId,
                Priority = r.SentPriority,
            }, out _))
            {
                Reject(r, t);
                continue;
            }

            r.Worker = decision.WorkerIndex;
            r.Dispatch = t;
            r.Reason = decision.Reason;
            r.QueuedPrefillAtDispatch = slot.Info.PendingPrefillTokens;
            if (!HasCapacity(_workers[target]))
            {
                _dispatchCursor = (target + 1) % _workers.Length;
            }

            r.PredictedUncached = Math.Max(0, r.Trace.In - decision.PredictedCachedTokens);
            q.ExpectedCachedTokens = decision.PredictedCachedTokens;
            slot.Info.OnDispatched(r.PredictedUncached);
            _routing.OnRouted(r.Route, slot.Info);
            _live.Add(r.EngineId, r);
        }

        foreach (var w in _workers)
        {
            w.Info.Draining = false;
        }

        for (int i = 0; i < _workers.Length; i++)
        {
            Kick(i, t);
        }
    }

    private void Reject(SimRequest r, double t)
    {
        _rejected++;
        _records.Add(new RequestRecord(r.Session.Session.Id, r.Turn, r.Session.Session.Tenant, r.Arrival, double.NaN, t, -1, r.Trace.In, 0, 0, true));
        _scheduler.Complete(r.Queued, 0, 0);
        _reserve.Complete(r.Queued);
        _tenantActive[r.Session.Tenant]--;

        _lastFinish = Math.Max(_lastFinish, t);
        TurnDone(r.Session, r.Turn, t);
    }

    private void Kick(int worker, double t)
    {
        var w = _workers[worker];
        if (w.Busy || w.RetryPending || !w.Engine.HasWork)
        {
            return;
        }

        var step = w.Engine.Step();
        if (step.Events.Count == 0 && step.Duration <= TimeSpan.Zero)
        {
            // Nothing could be scheduled (e.g. KV held by pins): try again a little later, bounded.
            if (++w.StuckRetries > StuckRetryLimit)
            {
                throw new InvalidOperationException($"worker {worker} made no progress for {StuckRetryLimit} retries at t={t:F3}s");
            }

            w.RetryPending = true;
            _events.Schedule(t + StuckRetrySeconds, Event.Retry(worker));
            return;
        }

        w.StuckRetries = 0;
        w.Busy = true;
        double duration = step.Duration.TotalSeconds;
        w.StepEndsAt = t + duration;
        if (_scenario.RequestsOut)
        {
            RecordPrefillStep(w.Engine.LastPlan, t, duration);
        }

        w.ComputedTokens += step.PrefillTokens + step.DecodeTokens;
        w.Preemptions += step.Preempted;
        SamplePins(w, t);
        _events.Schedule(t + duration, Event.StepDone(worker, step));
    }

    /// <summary>Adds a step to the TTFT breakdown of every request whose prompt it computed (before its first token).</summary>
    private void RecordPrefillStep(StepPlan plan, double t, double duration)
    {
        var chunks = plan.Chunks;
        for (int i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            if (c.IsDecode || !_live.TryGetValue(c.RequestId, out var r) || !double.IsNaN(r.FirstToken))
            {
                continue;
            }

            if (double.IsNaN(r.FirstScheduled))
            {
                r.FirstScheduled = t;
            }
            else if (c.ContextTokens < r.ComputedUpTo)
            {
                r.Preempted++; // its computed tokens were dropped: recomputing after a preemption
            }

            r.ComputedUpTo = c.ContextTokens + c.NewTokens;
            r.PrefillSteps++;
            r.PrefillStepSeconds += duration;
            r.PrefillDecodes += plan.DecodeTokens;
            r.PrefillShared += plan.PrefillTokens - c.NewTokens;
        }
    }

    /// <summary>
    /// Integrates the engine's pinned blocks (<see cref="EngineState.KvBlocksPinned"/>) over time, sampling the
    /// state at most every <see cref="PinSampleSeconds"/> of virtual time (piecewise constant between samples).
    /// </summary>
    private void SamplePins(WorkerSlot w, double t, bool force = false)
    {
        if (!force && t - w.LastPinSample < PinSampleSeconds)
        {
            return;
        }

        _pinnedBlockSeconds += w.LastPinned * (t - w.LastPinSample);
        w.LastPinned = w.Engine.GetState().KvBlocksPinned;
        w.LastPinSample = t;
    }

    private void StepDone(int worker, StepResult step, double t)
    {
        var w = _workers[worker];
        w.Busy = false;
        if (_kvConsumer is not null)
        {
            RelayKvEvents(worker, w);
        }

        bool contended = _tenantsQueued >= 2;
        double delivered = 0;
        int bucket = (int)(t / ServiceBucketSeconds);
        while (_serviceBuckets.Count <= bucket)
        {
            _serviceBuckets.Add(new double[_tenants.Length]);
        }

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
                    _reloadedTokens += ev.ReloadedTokens;
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

            _tenantService[tenant] += service;
            _serviceBuckets[bucket][tenant] += service;
            if (contended && _tenantQueued[tenant] > 0)
            {
                _tenantContendedService[tenant] += service;
                delivered += service;
            }
        }

        if (contended && delivered > 0)
        {
            var entitled = Entitled();
            for (int i = 0; i < entitled.Length; i++)
            {
                _tenantEntitled[i] += delivered * entitled[i];
            }

            _contendedTotal += delivered;
        }

        Kick(worker, t);
        TryDispatch(t, worker);
    }

    private void Finish(SimRequest r, WorkerSlot w, double t)
    {
        _live.Remove(r.EngineId);
        r.Finish = t;
        w.Info.OnCompleted(r.PredictedUncached, r.Trace.In, r.ReachedDecode);
        _routing.OnCompleted(r.Route, w.Info, r.Cached);
        _scheduler.Complete(r.Queued, r.Cached, r.Emitted);
        _reserve.Complete(r.Queued);
        int tenant = r.Session.Tenant;
        _tenantActive[tenant]--;

        _completed++;
        _tenantCompleted[tenant]++;
        var s0 = r.Session;
        double ttft = (r.FirstToken - r.Arrival) * 1000.0;
        _ttft.Add(ttft);
        _tenantTtft[tenant].Add(ttft);
        _e2e.Add((t - r.Arrival) * 1000.0);
        if (r.Output > 1)
        {
            _tpot.Add((t - r.FirstToken) * 1000.0 / (r.Output - 1));
        }

        _records.Add(new RequestRecord(s0.Session.Id, r.Turn, s0.Session.Tenant, r.Arrival, r.FirstToken, t, r.Worker, r.Trace.In, r.Cached, r.Output, false)
        {
            Dispatch = r.Dispatch,
            Reason = r.Reason,
            QueuedPrefillAtDispatch = r.QueuedPrefillAtDispatch,
            PreviousWorker = r.PreviousWorker,
            PredictedCachedTokens = r.Trace.In - r.PredictedUncached,
            Breakdown = _scenario.RequestsOut ? r.Breakdown() : null,
        });
        _promptTokens += r.Trace.In;
        _cachedTokens += r.Cached;
        _outputTokens += r.Output;
        if (r.Turn > 0)
        {
            int lost = Math.Max(0, r.ReusableTokens - r.Cached);
            _reprefill += lost;
            var cause = r.Worker != r.PreviousWorker ? ReprefillCause.Moved
                : r.CachedOnArrival < r.ReusableTokens ? ReprefillCause.EvictedBeforeArrival
                : ReprefillCause.EvictedAfterArrival;
            (r.AfterToolGap ? _resumedTool : _resumedHuman).Add(r.ReusableTokens, lost, cause, r.PinFate);
        }

        s0.LastWorker = r.Worker;
        s0.LastStop = r.Trace.Stop;

        _lastFinish = Math.Max(_lastFinish, t);
        var s = r.Session;
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
                _events.Schedule(t + delay, Event.Prefetch(worker, session));
            }

            _retention.PendingPrefetches.Clear();
            foreach (var ws in _workers)
            {
                SamplePins(ws, t, force: true);
            }
        }

        TurnDone(s, r.Turn, t);
    }

    private WorkingSet? AgentWorkingSetOf()
    {
        var agents = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in _sessions)
        {
            if (!s.Session.OneShot)
            {
                agents.Add(s.Session.Id);
            }
        }

        long pool = 0;
        foreach (var w in _workers)
        {
            pool += (long)w.Engine.KvBlocksTotal * _scenario.BlockSize;
        }

        return agents.Count == 0 ? null : WorkingSet.Of(_records, agents, WorkingSetTauSeconds, pool);
    }

    private void RelayKvEvents(int worker, WorkerSlot w)
    {
        _kvBuffer.Clear();
        w.Engine.KvEvents.ReadAfter(w.KvSeq, _kvBuffer, out bool gap);
        if (gap)
        {
            var snap = w.Engine.KvEvents.Snapshot();
            _kvConsumer!.ApplySnapshot(worker, snap.Seq, snap.BlockHashes, snap.HostBlockHashes);
            w.KvSeq = snap.Seq;
            return;
        }

        foreach (var e in _kvBuffer)
        {
            var type = e.Type switch
            {
                Worker.Engine.KvEventType.Stored => Worker.Contract.KvEventType.Stored,
                Worker.Engine.KvEventType.Removed => Worker.Contract.KvEventType.Removed,
                Worker.Engine.KvEventType.Cleared => Worker.Contract.KvEventType.Cleared,
                _ => Worker.Contract.KvEventType.PinDropped,
            };
            var medium = e.Tier == KvTier.Host ? Worker.Contract.KvMedium.Cpu : Worker.Contract.KvMedium.Gpu;
            _kvConsumer!.Apply(worker, new Worker.Contract.KvEvent(e.Seq, type, e.BlockHashes, e.ParentBlockHash, medium));
            w.KvSeq = e.Seq;
        }
    }

    // ---------------- fairness accounting ----------------

    private void UpdateContention(double t)
    {
        if (_tenantsQueued >= 2)
        {
            _contendedSeconds += t - _lastContentionChange;
        }

        _lastContentionChange = t;
    }

    private double[] Entitled()
    {
        if (_entitledCache is not null)
        {
            return _entitledCache;
        }

        var active = new List<string>();
        var index = new List<int>();
        for (int i = 0; i < _tenants.Length; i++)
        {
            if (_tenantQueued[i] > 0)
            {
                active.Add(_tenants[i]);
                index.Add(i);
            }
        }

        var shares = Stats.EntitledShares(active, _weightOf);
        var result = new double[_tenants.Length];
        for (int j = 0; j < index.Count; j++)
        {
            result[index[j]] = shares[j];
        }

        _entitledCache = result;
        return result;
    }

    private RunResult BuildResult()
    {
        var tenants = new List<TenantResult>(_tenants.Length);
        var ratios = new List<double>();
        for (int i = 0; i < _tenants.Length; i++)
        {
            double share = _contendedTotal > 0 ? _tenantContendedService[i] / _contendedTotal : 0;
            double entitled = _contendedTotal > 0 ? _tenantEntitled[i] / _contendedTotal : 0;
            if (entitled > 0)
            {
                ratios.Add(share / entitled);
            }

            tenants.Add(new TenantResult
            {
                Tenant = _tenants[i],
                Weight = _weightOf(_tenants[i]),
                ServiceTokens = _tenantService[i],
                Share = share,
                EntitledShare = entitled,
                TtftMs = Percentiles.Of(_tenantTtft[i]),
                Completed = _tenantCompleted[i],
            });
        }

        long maxLoad = long.MinValue, minLoad = long.MaxValue, preemptions = 0;
        foreach (var w in _workers)
        {
            maxLoad = Math.Max(maxLoad, w.ComputedTokens);
            minLoad = Math.Min(minLoad, w.ComputedTokens);
            preemptions += w.Preemptions;
        }

        double span = double.IsNaN(_firstArrival) ? 0 : _lastFinish - _firstArrival;
        var ttftSorted = new List<double>(_ttft);
        ttftSorted.Sort();
        var buckets = _serviceBuckets.ToArray();
        return new RunResult
        {
            Routing = _routingName,
            Scheduling = _schedulingName,
            Retention = _retentionName,
            Seed = _scenario.Seed,
            TtftMs = Percentiles.Of(_ttft),
            TpotMs = Percentiles.Of(_tpot),
            E2eMs = Percentiles.Of(_e2e),
            PrefixHitRatio = _promptTokens == 0 ? 0 : (double)_cachedTokens / _promptTokens,
            ThroughputTokensPerSecond = span > 0 ? _outputTokens / span : 0,
            Completed = _completed,
            Rejected = _rejected,
            WorkerLoadMaxOverMin = (double)maxLoad / Math.Max(1, minLoad),
            JainIndex = Stats.Jain(ratios),
            ContendedSeconds = _contendedSeconds,
            MakespanSeconds = span,
            Preemptions = preemptions,
            HostReloadedTokens = _reloadedTokens,
            HostRetains = _retention.HostRetains,
            PrefetchedBlocks = _retention.PrefetchedBlocks,
            HostKvBlocks = _workers.Length > 0 ? _workers[0].Engine.HostKvBlocksTotal : 0,
            Tenants = tenants,
            ReprefillTokensResumed = _reprefill,
            ResumedAfterTool = _resumedTool,
            ResumedAfterHuman = _resumedHuman,
            RetentionStats = _retention.Stats,
            ProgramPriority = _scenario.ProgramPriority,
            ResumedTurnsBoosted = _resumedBoosted,
            PinnedBlockSeconds = _pinnedBlockSeconds,
            PinnedUnusedBlockSeconds = _retention.PinnedUnusedBlockSeconds,
            TtftSamplesMs = ttftSorted,
            ServiceOverTime = buckets,
            ServiceBucketSeconds = ServiceBucketSeconds,
            Events = _eventCount,
            Requests = _records,
            AgentWorkingSet = AgentWorkingSetOf(),
            Locality = _pick.Enabled,
            LagBound = _scenario.LagBound,
            LocalityPicks = (_scheduler as HierarchicalFairScheduler)?.LocalityPicks ?? 0,
            LocalityReorders = (_scheduler as HierarchicalFairScheduler)?.LocalityReorders ?? 0,
            MaxDispatchLag = (_scheduler as HierarchicalFairScheduler)?.MaxDispatchLag ?? 0,
            Reserve = _scheduler is HierarchicalFairScheduler ? _reserve.Reserve : 0, // fcfs and vtc have no notion of share
            ReservedPicks = _scheduler is HierarchicalFairScheduler ? _reserve.ReservedPicks : 0,
            ReserveLent = _reserve.Lent,
            ReserveReclaimed = _reserve.Reclaimed,
            UrgentDispatches = _urgentDispatches,
        };
    }

    // ---------------- state types ----------------

    private enum EventKind
    {
        StartSession,
        Arrival,
        StepDone,
        Retry,
        RenewCheck,
        Prefetch,
    }

    private sealed class Event
    {
        public EventKind Kind;
        public SessionState? Session;
        public int Turn;
        public int Worker;
        public StepResult? Step;
        public string? SessionId;

        public static Event StartSession(SessionState s) => new() { Kind = EventKind.StartSession, Session = s };

        public static Event Arrival(SessionState s, int turn) => new() { Kind = EventKind.Arrival, Session = s, Turn = turn };

        public static Event StepDone(int worker, StepResult step) => new() { Kind = EventKind.StepDone, Worker = worker, Step = step };

        public static Event Retry(int worker) => new() { Kind = EventKind.Retry, Worker = worker };

        public static Event RenewCheck() => new() { Kind = EventKind.RenewCheck };

        public static Event Prefetch(int worker, string session) => new() { Kind = EventKind.Prefetch, Worker = worker, SessionId = session };
    }

    private sealed class WorkerSlot(LlmEngine engine, WorkerInfo info)
    {
        public LlmEngine Engine { get; } = engine;
        public WorkerInfo Info { get; } = info;
        public bool Busy;
        public double StepEndsAt;
        public bool RetryPending;
        public int StuckRetries;
        public long ComputedTokens;
        public long Preemptions;
        public long KvSeq;
        public double LastPinSample;
        public int LastPinned;
    }

    private sealed class SessionState
    {
        public SessionState(SimSession session, int tenant)
        {
            Session = session;
            Tenant = tenant;
            int n = session.Turns.Count;
            Blocking = new int[n + 1];
            BlockingDoneAt = new double[n + 1];
            foreach (var c in session.Children)
            {
                Blocking[c.ParentTurn + 1]++;
            }

            OpenChildren = session.Children.Count;
        }

        public SimSession Session { get; }
        public int Tenant { get; }
        public int[] Blocking { get; }
        public double[] BlockingDoneAt { get; }
        public int OpenChildren;
        public bool Started;
        public bool Done;
        public int Issued;
        public int Completed;
        public double Base;
        public ulong[]? PreviousHashes;
        public int LastWorker = -1;
        public string? LastStop;
    }

    private sealed class SimRequest
    {
        public long Id;
        public required string EngineId;
        public required SessionState Session;
        public int Turn;
        public required TraceRequest Trace;
        public double Arrival;
        public required ulong[] Hashes;
        public int Output;
        public required RouteRequest Route;
        public QueuedRequest Queued = null!;
        public int Worker = -1;
        public int PredictedUncached;
        public double FirstToken = double.NaN;
        public double Finish = double.NaN;
        public int Cached;
        public int Emitted;
        public bool ReachedDecode;
        public int ReusableTokens;
        public int CachedOnArrival;
        public int PreviousWorker = -1;
        public bool AfterToolGap;
        public PinFate PinFate;
        public int EnginePriority;
        public double Dispatch = double.NaN;
        public string Reason = "";
        public long QueuedPrefillAtDispatch;
        public int SentPriority;
        public double StepInProgress;
        public double FirstScheduled = double.NaN;
        public int PrefillSteps;
        public double PrefillStepSeconds;
        public int PrefillDecodes;
        public int PrefillShared;
        public int Preempted;
        public int ComputedUpTo;

        public TtftBreakdown Breakdown() => new()
        {
            Priority = SentPriority,
            FirstScheduled = FirstScheduled,
            StepInProgressSeconds = StepInProgress,
            PrefillSteps = PrefillSteps,
            PrefillStepSeconds = PrefillStepSeconds,
            PrefillDecodes = PrefillDecodes,
            PrefillSharedTokens = PrefillShared,
            Preempted = Preempted,
        };
    }
}
