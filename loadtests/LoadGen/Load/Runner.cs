using System.Diagnostics;
using LoadGen.Client;
using LoadGen.Metrics;

namespace LoadGen.Load;

/// <summary>Bounds of a run.</summary>
public sealed class RunOptions
{
    /// <summary>No request starts after this much time.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>No request starts once this many have started (0 = no limit).</summary>
    public long MaxRequests { get; init; }

    /// <summary>After issuing stops, in-flight requests get this long to finish on their own before they are cancelled
    /// (and recorded as errors with reason <c>cancelled_at_run_end</c>).</summary>
    public TimeSpan Drain { get; init; } = TimeSpan.FromSeconds(130);

    /// <summary>Seed of every random choice (arrival gaps, prompts, Zipf draws).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Actions at fixed times.</summary>
    public IReadOnlyList<TimedAction> Actions { get; init; } = [];

    /// <summary>Records every sent request as a simulator workload (<c>--record-workload</c>), or null.</summary>
    public Reporting.WorkloadRecorder? Recorder { get; init; }
}

/// <summary>What a run produced.</summary>
/// <summary>What a run produced. <paramref name="ArrivalLagMs"/>: for every open-loop arrival (Poisson or a trace's
/// times), how late it was started against its schedule — large values mean the load generator itself was starved and
/// the offered load was lower than asked.</summary>
public sealed record RunResult(IReadOnlyList<RequestResult> Results, long Issued, long Recorded, double ElapsedSeconds, IReadOnlyList<RunEvent> Events,
    IReadOnlyList<double>? ArrivalLagMs = null);

/// <summary>
/// Executes flows against a target: open-loop arrivals, closed-loop users, sessions with think time, bounded by
/// duration and request count. Every request that starts is recorded exactly once, whatever happens to it.
/// </summary>
public sealed class Runner
{
    private readonly SseChatClient _client;
    private readonly MetricsCollector _metrics;
    private readonly RunOptions _options;
    private readonly List<double> _arrivalLagMs = [];
    private readonly List<Task<int>> _sessions = [];
    private readonly List<RunEvent> _events = [];
    private readonly CancellationTokenSource _stopIssuing = new();
    private readonly CancellationTokenSource _abort = new();
    private long _budget;
    private long _startTimestamp;

    /// <summary>Creates a runner.</summary>
    public Runner(SseChatClient client, MetricsCollector metrics, RunOptions options)
    {
        _client = client;
        _metrics = metrics;
        _options = options;
    }

    /// <summary>Seconds since the run started.</summary>
    public double Elapsed => _startTimestamp == 0 ? 0 : Stopwatch.GetElapsedTime(_startTimestamp).TotalSeconds;

    /// <summary>Runs <paramref name="flows"/> until their simulations end, the duration passes, the request budget is
    /// spent or <paramref name="ct"/> is cancelled; then drains in-flight requests.</summary>
    public async Task<RunResult> RunAsync(IReadOnlyList<Flow> flows, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(flows);
        _startTimestamp = Stopwatch.GetTimestamp();
        _stopIssuing.CancelAfter(_options.Duration);
        using var reg = ct.Register(() => _stopIssuing.Cancel());
        var stop = _stopIssuing.Token;

        var drivers = new List<Task>();
        for (int i = 0; i < flows.Count; i++)
        {
            drivers.Add(RunFlowAsync(flows[i], i, stop));
        }

        foreach (var action in _options.Actions)
        {
            drivers.Add(RunActionAsync(action, stop));
        }

        await Task.WhenAll(drivers).ConfigureAwait(false);
        _stopIssuing.Cancel();

        Task all;
        lock (_sessions)
        {
            all = Task.WhenAll(_sessions);
        }

        if (await Task.WhenAny(all, Task.Delay(_options.Drain, CancellationToken.None)).ConfigureAwait(false) != all)
        {
            await _abort.CancelAsync().ConfigureAwait(false);
        }

        await all.ConfigureAwait(false);
        double elapsed = Elapsed;
        List<double> lags;
        lock (_arrivalLagMs)
        {
            lags = [.. _arrivalLagMs];
        }

        return new RunResult(_metrics.Results, _metrics.Issued, _metrics.Recorded, elapsed, _events, lags);
    }

    private async Task RunActionAsync(TimedAction action, CancellationToken stop)
    {
        try
        {
            await Task.Delay(action.At, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        string? error = null;
        try
        {
            await action.Action(_abort.Token).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // the action's failure is reported, the run goes on
        catch (Exception e)
        {
            error = e.Message;
        }
#pragma warning restore CA1031

        double at = Elapsed; // when the action took effect (a killed worker is down from here on)
        lock (_events)
        {
            _events.Add(new RunEvent(action.Name, at, error));
        }
    }

    private async Task RunFlowAsync(Flow flow, int flowIndex, CancellationToken stop)
    {
        var rng = new Random(DeriveSeed(_options.Seed, flowIndex, -1));
        long index = 0;
        foreach (var sim in flow.Simulations)
        {
            if (stop.IsCancellationRequested)
            {
                return;
            }

            long phaseStart = Stopwatch.GetTimestamp();
            switch (sim)
            {
                case LoadSimulation.Inject inject:
                    index = await InjectAsync(flow, flowIndex, index, phaseStart, sim.During, _ => inject.Rate, rng, stop).ConfigureAwait(false);
                    break;
                case LoadSimulation.RampingInject ramp:
                    index = await InjectAsync(flow, flowIndex, index, phaseStart, sim.During,
                        t => ramp.FromRate + (ramp.ToRate - ramp.FromRate) * Math.Clamp(t / Math.Max(1e-9, ramp.During.TotalSeconds), 0, 1), rng, stop).ConfigureAwait(false);
                    break;
                case LoadSimulation.InjectAt at:
                    foreach (var offset in at.Offsets)
                    {
                        if (!await DelayUntilAsync(phaseStart, offset, stop).ConfigureAwait(false))
                        {
                            return;
                        }

                        RecordArrivalLag(phaseStart, offset);
                        _ = StartSession(flow, flowIndex, index++, null);
                    }

                    break;
                case LoadSimulation.KeepConstant keep:
                {
                    using var phase = CancellationTokenSource.CreateLinkedTokenSource(stop);
                    phase.CancelAfter(keep.During);
                    var copies = new Task[keep.Copies];
                    long first = index;
                    index += keep.Copies;
                    for (int c = 0; c < keep.Copies; c++)
                    {
                        copies[c] = KeepConstantCopyAsync(flow, flowIndex, first + c, keep.Copies, phase.Token);
                    }

                    await Task.WhenAll(copies).ConfigureAwait(false);
                    break;
                }

                default:
                    throw new NotSupportedException(sim.GetType().Name);
            }
        }
    }

    private async Task<long> InjectAsync(Flow flow, int flowIndex, long index, long phaseStart, TimeSpan during, Func<double, double> rateAt, Random rng, CancellationToken stop)
    {
        double t = 0;
        double end = during.TotalSeconds;
        while (true)
        {
            double rate = rateAt(t);
            if (rate <= 0)
            {
                t += 0.1; // a ramp from zero: look again a little later
            }
            else
            {
                t += -Math.Log(1 - rng.NextDouble()) / rate;
            }

            if (t >= end || !await DelayUntilAsync(phaseStart, TimeSpan.FromSeconds(t), stop).ConfigureAwait(false))
            {
                return index;
            }

            if (rate > 0)
            {
                RecordArrivalLag(phaseStart, TimeSpan.FromSeconds(t));
                _ = StartSession(flow, flowIndex, index++, null);
            }
        }
    }

    private async Task KeepConstantCopyAsync(Flow flow, int flowIndex, long firstIndex, int stride, CancellationToken phase)
    {
        long index = firstIndex;
        while (!phase.IsCancellationRequested)
        {
            var task = StartSession(flow, flowIndex, index, phase);
            index += stride;
            if (await task.ConfigureAwait(false) == 0)
            {
                // A session that sent nothing (budget spent, or an empty session): do not spin.
                try
                {
                    await Task.Delay(50, phase).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>
    /// The seed of flow <paramref name="flowIndex"/>'s arrival stream (<paramref name="index"/> = -1) or of its session
    /// <paramref name="index"/>: a fixed function of the run seed (SplitMix64 mixing), so the same <c>--seed</c> gives the
    /// same arrivals and prompts in every process. (<see cref="HashCode.Combine{T1,T2,T3}"/> is randomised per process,
    /// which made two runs of one seed differ: 252 / 242 / 238 shared-prefix arrivals in three runs.)
    /// </summary>
    public static int DeriveSeed(int seed, int flowIndex, long index) =>
        (int)Scenarios.SyntheticText.Key(Scenarios.SyntheticText.Key((uint)seed, (uint)flowIndex), unchecked((ulong)index));

    private void RecordArrivalLag(long phaseStart, TimeSpan scheduled)
    {
        double lag = Math.Max(0, (Stopwatch.GetElapsedTime(phaseStart) - scheduled).TotalMilliseconds);
        lock (_arrivalLagMs)
        {
            _arrivalLagMs.Add(lag);
        }
    }

    private static async Task<bool> DelayUntilAsync(long phaseStart, TimeSpan offset, CancellationToken stop)
    {
        var wait = offset - Stopwatch.GetElapsedTime(phaseStart);
        if (stop.IsCancellationRequested)
        {
            return false;
        }

        if (wait > TimeSpan.Zero)
        {
            try
            {
                await Task.Delay(wait, stop).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        return true;
    }

    private Task<int> StartSession(Flow flow, int flowIndex, long index, CancellationToken? phase)
    {
        var session = flow.NewSession(index, new Random(DeriveSeed(_options.Seed, flowIndex, index)));
        return Track(RunSessionAsync(flow.Name, session, phase));
    }

    private Task<int> Track(Task<int> task)
    {
        lock (_sessions)
        {
            _sessions.Add(task);
        }

        return task;
    }

    private bool TryTakeBudget()
    {
        if (_options.MaxRequests <= 0)
        {
            Interlocked.Increment(ref _budget);
            return true;
        }

        if (Interlocked.Increment(ref _budget) > _options.MaxRequests)
        {
            _stopIssuing.Cancel();
            return false;
        }

        if (Volatile.Read(ref _budget) == _options.MaxRequests)
        {
            _stopIssuing.Cancel(); // that was the last one
        }

        return true;
    }

    private async Task<int> RunSessionAsync(string flowName, ISession session, CancellationToken? phase)
    {
        int sent = 0;
        var stop = _stopIssuing.Token;
        foreach (var (offset, child) in session.Children)
        {
            _ = Track(RunChildAsync(flowName, child, offset, stop));
        }

        RequestResult? previous = null;
        bool first = true;
        while (true)
        {
            var step = session.Next(previous);
            if (step is null)
            {
                return sent;
            }

            if (step.Value.ThinkBefore > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(step.Value.ThinkBefore, stop).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return sent;
                }
            }

            // A closed-loop user whose phase ended finishes the session it is in, but starts no new one.
            if (stop.IsCancellationRequested || (first && phase is { IsCancellationRequested: true }) || !TryTakeBudget())
            {
                return sent;
            }

            first = false;
            sent++;
            previous = await SendOneAsync(flowName, session, step.Value.Request).ConfigureAwait(false);
        }
    }

    private async Task<int> RunChildAsync(string flowName, ISession child, TimeSpan offset, CancellationToken stop)
    {
        try
        {
            await Task.Delay(offset, stop).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return 0;
        }

        return await RunSessionAsync(flowName, child, null).ConfigureAwait(false);
    }

    private async Task<RequestResult> SendOneAsync(string flowName, ISession session, ChatRequest request)
    {
        long id = _metrics.OnIssued(request.Tenant.Name);
        var result = new RequestResult
        {
            Id = id,
            Flow = flowName,
            Tenant = request.Tenant.Name,
            SessionId = session.Id,
            GapBefore = request.GapBefore,
            ReusablePrefixTokens = request.ReusablePrefixTokens,
            StartSeconds = Elapsed,
            Outcome = Outcome.Error,
            ErrorReason = "no_outcome",
        };
        try
        {
            await _client.SendAsync(request, result, _abort.Token).ConfigureAwait(false);
        }
        finally
        {
            _metrics.OnRecorded(result);
            _options.Recorder?.Add(request, result);
        }

        return result;
    }
}
