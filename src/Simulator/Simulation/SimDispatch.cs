using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>
/// The simulator's dispatch from the gateway queue to the engines. Capacity rule: a worker takes a new request while
/// fewer than <see cref="Scenario.MaxWaitingPerWorker"/> requests wait in its engine (not yet admitted to the running
/// batch), fewer than MaxRunningSequences wait or run, its prompt tokens not yet prefilled are below
/// <see cref="Scenario.MaxPendingPrefillTokens"/> and its KV use below <see cref="Scenario.KvHighWatermark"/> (each
/// when set). Workers without capacity are marked ineligible (<see cref="WorkerInfo.Draining"/>) for that routing decision.
/// </summary>
internal sealed class SimDispatch : IDispatchTarget
{
    private readonly Scenario _scenario;
    private readonly SimFleet _fleet;
    private readonly IRoutingPolicy _routing;
    private readonly IRequestScheduler _scheduler;
    private readonly ReservedCapacity _reserve;
    private readonly TenantLedger _ledger;
    private readonly RunRecorder _recorder;
    private readonly Dictionary<string, SimRequest> _live;
    private readonly Action<SimRequest, double> _reject;
    private readonly DispatchDriver _driver;
    private int _cursor;
    private readonly SlotCapacity? _slots;
    private int _target;
    private int _freed;
    private int _free;
    private double _now;

    public SimDispatch(Scenario scenario, SimFleet fleet, IRoutingPolicy routing, IRequestScheduler scheduler, LocalityPick pick, ReservedCapacity reserve,
        TenantLedger ledger, RunRecorder recorder, Dictionary<string, SimRequest> live, Action<SimRequest, double> reject)
    {
        _scenario = scenario;
        _fleet = fleet;
        _routing = routing;
        _scheduler = scheduler;
        _driver = new DispatchDriver(DispatchDriver.Over(scheduler), reserve, pick, scenario.Overdraw);
        _slots = scenario.Capacity == Scenario.SlotCapacityRule ? new SlotCapacity
        {
            MaxInFlightPerWorker = scenario.MaxInFlightPerWorker,
            MaxReportedWaiting = scenario.MaxWaitingPerWorker,
            KvHighWatermark = scenario.KvHighWatermark > 0 ? scenario.KvHighWatermark : double.PositiveInfinity,
            MaxPendingPrefillTokens = scenario.MaxPendingPrefillTokens,
        } : null;
        _reserve = reserve;
        _ledger = ledger;
        _recorder = recorder;
        _live = live;
        _reject = reject;
    }

    /// <summary>
    /// Dispatches at <paramref name="t"/> while some worker has capacity, through the gateway's loop
    /// (<see cref="DispatchDriver"/>). Each pick is made for one worker with capacity (the one that just finished a step,
    /// <paramref name="freed"/>, first, then in rotation) through <see cref="LocalityPick"/>: hfair prefers, among
    /// requests within its lag bound, the one with the most tokens predicted cached on that worker, and that request goes
    /// to that worker (<see cref="DispatchRouting"/>, as in the gateway); any other request is placed by routing among
    /// the workers with capacity; a request that reclaims a lent slot goes to the worker with the least prompt still to
    /// prefill. Idle workers with work then start a step.
    /// </summary>
    public void Run(double t, int freed = -1)
    {
        if (freed >= 0)
        {
            _cursor = freed;
        }

        _freed = freed;
        _now = t;
        _driver.Pump(this);
        foreach (var w in _fleet.Workers)
        {
            w.Info.Draining = false;
        }

        _fleet.KickAll(t);
    }

    /// <summary>Workers with capacity now, marking the others ineligible for routing; the pick is for the first in rotation.</summary>
    DispatchCapacity IDispatchTarget.Capacity(bool first)
    {
        if (_slots is not null)
        {
            return SlotsFree(_slots, first);
        }

        var workers = _fleet.Workers;
        int target = -1, free = 0;
        for (int k = 0; k < workers.Count; k++)
        {
            int i = (_cursor + k) % workers.Count;
            var w = workers[i];
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

        _target = target;
        return new DispatchCapacity(free, target < 0 ? null : workers[target].Info);
    }

    /// <summary>Routes <paramref name="q"/> and submits it to the chosen engine (or rejects it).</summary>
    void IDispatchTarget.Release(QueuedRequest q, bool reclaimed)
    {
        double t = _now;
        var workers = _fleet.Workers;
        int only = -1;
        if (reclaimed && _slots is null)
        {
            // No capacity anywhere: the within-share request that took back a lent slot goes to the worker nearest to
            // taking work (least prompt still to prefill, the pending-prefill rule's measure), where its engine
            // priority puts it first.
            only = 0;
            for (int k = 1; k < workers.Count; k++)
            {
                if (workers[k].Info.PendingPrefillTokens < workers[only].Info.PendingPrefillTokens)
                {
                    only = k;
                }
            }

            _target = only;
        }

        var r = (SimRequest)q.Payload!;
        _ledger.Dequeued(r.Session.Tenant, t);

        // The engines' pools and queues as a worker's state poll would report them (memory-aware placement reads free
        // blocks, llm-d's scorers KV usage and waiting requests).
        foreach (var w in workers)
        {
            Report(w);
            if (only >= 0)
            {
                w.Info.Draining = w.Info.Index != only;
            }
        }

        var decision = DispatchRouting.Route(_routing, r.Route, _fleet.Infos, q.PickedFor);
        if (decision.WorkerIndex < 0)
        {
            _reject(r, t);
            return;
        }

        var slot = workers[decision.WorkerIndex];
        bool urgent = _reserve.IsUrgent(_scheduler, q);
        _recorder.UrgentDispatches += urgent ? 1 : 0;
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
            _reject(r, t);
            return;
        }

        r.Worker = decision.WorkerIndex;
        r.Dispatch = t;
        r.Reason = decision.Reason;
        r.QueuedPrefillAtDispatch = slot.Info.PendingPrefillTokens;
        if (_slots is null && !HasCapacity(workers[_target]))
        {
            _cursor = (_target + 1) % workers.Count;
        }

        r.PredictedUncached = Math.Max(0, r.Trace.In - decision.PredictedCachedTokens);
        q.ExpectedCachedTokens = decision.PredictedCachedTokens;
        slot.Info.OnDispatched(r.PredictedUncached);
        _routing.OnRouted(r.Route, slot.Info);
        _live.Add(r.EngineId, r);
    }

    /// <summary>
    /// The gateway's rule (<see cref="SlotCapacity"/>) on state reported at this instant: slots of every worker less the
    /// requests in flight; after a release never more than one less than before. The first pick is for the worker whose
    /// step just ended, the others in plain fair order; routing sees every worker.
    /// </summary>
    private DispatchCapacity SlotsFree(SlotCapacity rule, bool first)
    {
        var workers = _fleet.Workers;
        int total = 0, inFlight = 0;
        foreach (var w in workers)
        {
            Report(w);
            total += rule.SlotsOf(w.Info, inTransit: false); // submitted at once: nothing is in transit
            inFlight += w.Info.InFlight;
        }

        _free = first ? total - inFlight : Math.Min(_free - 1, total - inFlight);
        return new DispatchCapacity(_free, first && _freed >= 0 ? workers[_freed].Info : null);
    }

    /// <summary>The engine's pools and queues as a worker's state poll would report them.</summary>
    private static void Report(WorkerSlot w)
    {
        w.Info.KvBlocksFree = w.Engine.KvBlocksFree;
        w.Info.KvUsage = (double)w.Engine.KvBlocksUsed / w.Engine.KvBlocksTotal;
        w.Info.ReportedWaiting = w.Engine.WaitingCount;
        w.Info.ReportedRunning = w.Engine.RunningCount;
        w.Info.InFlightAtReport = w.Info.InFlight;
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
}
