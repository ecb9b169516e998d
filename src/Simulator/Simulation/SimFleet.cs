using System.Globalization;
using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Simulator.Engine;
using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>
/// The simulated workers and their step loops. Per worker: while its engine has work, <c>Step()</c> is called at time
/// t and a <see cref="SimEventKind.StepDone"/> event delivers its sequence events at t + Duration; the next step
/// starts when the run kicks the worker again. An engine that can schedule nothing (e.g. KV held by pins) is retried
/// a little later, a bounded number of times. Also samples pinned KV over time, records each request's prefill steps
/// (the TTFT breakdown) and relays engine KV events to a routing policy's precise index.
/// </summary>
internal sealed class SimFleet
{
    private const double StuckRetrySeconds = 0.05;
    private const int StuckRetryLimit = 20_000;
    private const double PinSampleSeconds = 0.1;

    private readonly WorkerSlot[] _workers;
    private readonly List<WorkerInfo> _infos = [];
    private readonly EventQueue<SimEvent> _events;
    private readonly IReadOnlyDictionary<string, SimRequest> _live;
    private readonly bool _recordPrefillSteps;
    private readonly int _blockSize;
    private readonly List<Worker.Contract.KvEvent> _kvBuffer = [];
    private PreciseIndex? _kvConsumer;
    private double _pinnedBlockSeconds;

    /// <summary>Builds one engine per worker from <paramref name="scenario"/>, all on virtual time <paramref name="time"/>.</summary>
    public SimFleet(Scenario scenario, TimeProvider time, EventQueue<SimEvent> events, IReadOnlyDictionary<string, SimRequest> live)
    {
        _events = events;
        _live = live;
        _recordPrefillSteps = scenario.RequestsOut;
        _blockSize = scenario.BlockSize;
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
            }, time);
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
    }

    /// <summary>The workers, by index.</summary>
    public IReadOnlyList<WorkerSlot> Workers => _workers;

    /// <summary>The live records routing reads, by index.</summary>
    public IReadOnlyList<WorkerInfo> Infos => _infos;

    /// <summary>Block-seconds of pinned KV, integrated over the run.</summary>
    public double PinnedBlockSeconds => _pinnedBlockSeconds;

    /// <summary>Tokens the whole fleet's HBM KV pools hold.</summary>
    public long PoolTokens
    {
        get
        {
            long pool = 0;
            foreach (var w in _workers)
            {
                pool += (long)w.Engine.KvBlocksTotal * _blockSize;
            }

            return pool;
        }
    }

    /// <summary>Relays every engine's KV events to <paramref name="precise"/> at each step's end (workers then publish KV events).</summary>
    public void RelayKvEventsTo(PreciseIndex precise)
    {
        _kvConsumer = precise;
        foreach (var info in _infos)
        {
            info.PublishesKvEvents = true;
        }
    }

    /// <summary>A step of <paramref name="worker"/> ended: it is free for the next, and its KV events go to the index.</summary>
    public void StepEnded(int worker)
    {
        var w = _workers[worker];
        w.Busy = false;
        if (_kvConsumer is not null)
        {
            RelayKvEvents(worker, w);
        }
    }

    /// <summary>A stuck worker's retry came due.</summary>
    public void RetryDue(int worker) => _workers[worker].RetryPending = false;

    /// <summary>Starts a step on every idle worker with work.</summary>
    public void KickAll(double t)
    {
        for (int i = 0; i < _workers.Length; i++)
        {
            Kick(i, t);
        }
    }

    /// <summary>Starts a step on <paramref name="worker"/> if it is idle and has work.</summary>
    public void Kick(int worker, double t)
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
            _events.Schedule(t + StuckRetrySeconds, SimEvent.Retry(worker));
            return;
        }

        w.StuckRetries = 0;
        w.Busy = true;
        double duration = step.Duration.TotalSeconds;
        w.StepEndsAt = t + duration;
        if (_recordPrefillSteps)
        {
            RecordPrefillStep(w.Engine.LastPlan, t, duration);
        }

        w.ComputedTokens += step.PrefillTokens + step.DecodeTokens;
        w.Preemptions += step.Preempted;
        SamplePins(w, t);
        _events.Schedule(t + duration, SimEvent.StepDone(worker, step));
    }

    /// <summary>Integrates every worker's pins up to <paramref name="t"/> (pins may change now).</summary>
    public void SampleAllPins(double t)
    {
        foreach (var w in _workers)
        {
            SamplePins(w, t, force: true);
        }
    }

    /// <summary>Largest over smallest tokens computed per worker, and preemptions in all.</summary>
    public (double MaxOverMin, long Preemptions) Load()
    {
        long maxLoad = long.MinValue, minLoad = long.MaxValue, preemptions = 0;
        foreach (var w in _workers)
        {
            maxLoad = Math.Max(maxLoad, w.ComputedTokens);
            minLoad = Math.Min(minLoad, w.ComputedTokens);
            preemptions += w.Preemptions;
        }

        return ((double)maxLoad / Math.Max(1, minLoad), preemptions);
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
            _kvConsumer!.Apply(worker, e);
            w.KvSeq = e.Seq;
        }
    }
}
