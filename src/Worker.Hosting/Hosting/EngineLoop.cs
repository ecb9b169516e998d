using System.Threading.Channels;
using Worker.Engine;

namespace Worker.Hosting;

/// <summary>
/// Drives one <see cref="LlmEngine"/> against the wall clock. The engine is not thread-safe, so every call into it
/// (submit, abort, step, state, retain, release, KV log reads) happens under one lock. A single background loop runs
/// <c>Step()</c>, sleeps the step's modelled duration times the time scale, and only then hands the step's events
/// to the per-request channels, so clients see each token when its iteration "completes".
/// <para>Pacing keeps a deadline: each step's scaled duration is added to it and the loop sleeps until it, so
/// sub-millisecond steps are not rounded away (they accumulate until a sleep is worth taking) and oversleeping by
/// the OS timer is paid back by the next steps. A loop that falls far behind (CPU starved) forgets the debt beyond
/// <see cref="MaxCatchUp"/> instead of bursting tokens.</para>
/// </summary>
internal sealed class EngineLoop : IAsyncDisposable
{
    /// <summary>A sleep shorter than this is skipped (its time stays owed to the deadline).</summary>
    internal static readonly TimeSpan MinSleep = TimeSpan.FromMilliseconds(1);

    /// <summary>How far behind the deadline the loop may run before the debt is forgiven.</summary>
    internal static readonly TimeSpan MaxCatchUp = TimeSpan.FromMilliseconds(100);

    private static readonly TimeSpan IdleNoProgressWait = TimeSpan.FromMilliseconds(5);

    private readonly Lock _gate = new();
    private readonly LlmEngine _engine;
    private readonly TimeProvider _time;
    private readonly double _timeScale;
    private readonly Dictionary<string, ChannelWriter<SequenceEvent>> _subscribers = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _wake = new(0, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly ThroughputMeter _meter;
    private long _steps;
    private EngineState? _lastState;

    public EngineLoop(LlmEngine engine, TimeProvider time, double timeScale)
    {
        _engine = engine;
        _time = time;
        _timeScale = timeScale;
        _meter = new ThroughputMeter(time, TimeSpan.FromSeconds(10));
        KvEvents = engine.KvEvents;
        _loop = Task.Run(() => RunAsync(_stop.Token));
    }

    /// <summary>The engine's KV event log (thread-safe on its own: read without the engine lock).</summary>
    public KvEventLog KvEvents { get; }

    /// <summary>Wall seconds per modelled second.</summary>
    public double TimeScale => _timeScale;

    /// <summary>Steps run so far.</summary>
    public long Steps => Interlocked.Read(ref _steps);

    /// <summary>Output tokens per wall second over the last 10 s.</summary>
    public double TokensPerSecond => _meter.Rate();

    /// <summary>The loop's fault, if it died (the host reports unhealthy).</summary>
    public Exception? Fault => _loop.IsFaulted ? _loop.Exception?.GetBaseException() : null;

    /// <summary>
    /// Submits <paramref name="request"/>; its events go to the returned reader until Finished/Aborted/Rejected
    /// (after which the channel completes). False + reason when the engine refuses it outright.
    /// </summary>
    public bool TrySubmit(EngineRequest request, out ChannelReader<SequenceEvent>? events, out string? error)
    {
        var channel = Channel.CreateUnbounded<SequenceEvent>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        lock (_gate)
        {
            if (_subscribers.ContainsKey(request.Id))
            {
                events = null;
                error = $"duplicate request id {request.Id}";
                return false;
            }

            if (!_engine.Submit(request, out error))
            {
                events = null;
                error ??= "the engine refused the request";
                return false;
            }

            _subscribers[request.Id] = channel.Writer;
            Volatile.Write(ref _lastState, _engine.GetState());
        }

        Wake();
        events = channel.Reader;
        return true;
    }

    /// <summary>Aborts a request at once (its blocks are freed) and completes its channel. False if it was not known.</summary>
    public bool Abort(string requestId)
    {
        bool aborted;
        lock (_gate)
        {
            aborted = _engine.Abort(requestId);
            if (_subscribers.Remove(requestId, out var w))
            {
                w.TryComplete();
            }
        }

        return aborted;
    }

    /// <summary>Runs <paramref name="action"/> on the engine under the lock (state, retain, release, KV log reads).</summary>
    public T Read<T>(Func<LlmEngine, T> action)
    {
        lock (_gate)
        {
            return action(_engine);
        }
    }

    /// <summary>
    /// The engine's state without waiting behind a running step (a cpu-backend prefill can hold the lock for seconds, and
    /// routers' health probes must not time out meanwhile): fresh when the engine is free, else the snapshot taken right
    /// after the last step.
    /// </summary>
    public EngineState ReadState()
    {
        if (_gate.TryEnter())
        {
            try
            {
                var fresh = _engine.GetState();
                Volatile.Write(ref _lastState, fresh);
                return fresh;
            }
            finally
            {
                _gate.Exit();
            }
        }

        return Volatile.Read(ref _lastState) ?? Read(static e => e.GetState());
    }

    /// <summary>Runs a mutating action on the engine under the lock, then wakes the loop (pins may free room for waiting work).</summary>
    public T Mutate<T>(Func<LlmEngine, T> action)
    {
        T result;
        lock (_gate)
        {
            result = action(_engine);
        }

        Wake();
        return result;
    }

    private void Wake()
    {
        try
        {
            if (_wake.CurrentCount == 0)
            {
                _wake.Release();
            }
        }
        catch (SemaphoreFullException)
        {
            // already signalled
        }
    }

    private async Task RunAsync(CancellationToken ct)
    {
        long deadline = _time.GetTimestamp();
        var delivery = new List<(ChannelWriter<SequenceEvent> Writer, SequenceEvent Event)>();
        while (!ct.IsCancellationRequested)
        {
            StepResult? step = null;
            lock (_gate)
            {
                if (_engine.HasWork)
                {
                    step = _engine.Step();
                    Volatile.Write(ref _lastState, _engine.GetState());
                }
            }

            if (step is null)
            {
                // Idle: sleep until a submit (or a mutation) wakes us. Time spent idle is not owed.
                try
                {
                    await _wake.WaitAsync(Timeout.InfiniteTimeSpan, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                deadline = _time.GetTimestamp();
                continue;
            }

            Interlocked.Increment(ref _steps);
            if (step.Events.Count == 0 && step.Duration <= TimeSpan.Zero)
            {
                // Work exists but nothing could run (e.g. waiting for KV blocks): do not spin.
                        try
                {
                    await _wake.WaitAsync(IdleNoProgressWait, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                deadline = _time.GetTimestamp();
                continue;
            }

            await PaceAsync(step.Duration, ref deadline, ct).ConfigureAwait(false);
            if (ct.IsCancellationRequested)
            {
                break;
            }

            Deliver(step, delivery);
            }

        lock (_gate)
        {
            foreach (var w in _subscribers.Values)
            {
                w.TryComplete();
            }

            _subscribers.Clear();
        }
    }

    private ValueTask PaceAsync(TimeSpan modelled, ref long deadline, CancellationToken ct)
    {
        if (_timeScale <= 0)
        {
            return YieldAsync();
        }

        long now = _time.GetTimestamp();
        double scaledTicks = modelled.TotalSeconds * _timeScale * _time.TimestampFrequency;
        deadline += (long)scaledTicks;
        long maxLag = (long)(MaxCatchUp.TotalSeconds * _time.TimestampFrequency);
        if (now - deadline > maxLag)
        {
            deadline = now - maxLag;
        }

        var wait = _time.GetElapsedTime(now, deadline);
        if (wait < MinSleep)
        {
            return YieldAsync();
        }

        return new ValueTask(SleepAsync(wait, ct));
    }

    private async Task SleepAsync(TimeSpan wait, CancellationToken ct)
    {
        try
        {
            await Task.Delay(wait, _time, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // shutting down
        }
    }

    private static async ValueTask YieldAsync() => await Task.Yield();

    private void Deliver(StepResult step, List<(ChannelWriter<SequenceEvent> Writer, SequenceEvent Event)> delivery)
    {
        delivery.Clear();
        int tokens = 0;
        lock (_gate)
        {
            var events = step.Events;
            for (int i = 0; i < events.Count; i++)
            {
                var e = events[i];
                if (e.Kind is SequenceEventKind.FirstToken or SequenceEventKind.Token)
                {
                    tokens++;
                }

                bool terminal = e.Kind is SequenceEventKind.Finished or SequenceEventKind.Aborted or SequenceEventKind.Rejected;
                if (terminal ? _subscribers.Remove(e.RequestId, out var w) : _subscribers.TryGetValue(e.RequestId, out w))
                {
                    delivery.Add((w!, e));
                }
            }
        }

        _meter.Add(tokens);
        foreach (var (writer, e) in delivery)
        {
            writer.TryWrite(e);
            if (e.Kind is SequenceEventKind.Finished or SequenceEventKind.Aborted or SequenceEventKind.Rejected)
            {
                writer.TryComplete();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // expected
        }
        catch (Exception)
        {
            // a faulted loop was already reported via Fault
        }

        _stop.Dispose();
        _wake.Dispose();
    }
}
