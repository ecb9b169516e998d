namespace Gateway.Hosting;

/// <summary>
/// Counts requests in flight so shutdown can wait for them (up to the drain deadline) before the embedded workers
/// stop, and so /readyz can report draining.
/// </summary>
public sealed class InFlightTracker
{
    private int _count;
    private TaskCompletionSource? _idle;

    /// <summary>Requests in flight now.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>True once shutdown has begun.</summary>
    public bool Draining { get; internal set; }

    /// <summary>Marks a request in flight until the returned scope is disposed.</summary>
    public Scope Enter()
    {
        Interlocked.Increment(ref _count);
        return new Scope(this);
    }

    /// <summary>Completes when nothing is in flight (or <paramref name="ct"/> fires).</summary>
    public async Task WaitIdleAsync(CancellationToken ct)
    {
        while (Count > 0 && !ct.IsCancellationRequested)
        {
            TaskCompletionSource tcs;
            lock (this)
            {
                _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                tcs = _idle;
            }

            if (Count == 0)
            {
                break;
            }

            try
            {
                await tcs.Task.WaitAsync(TimeSpan.FromMilliseconds(200), ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private void Exit()
    {
        if (Interlocked.Decrement(ref _count) == 0)
        {
            TaskCompletionSource? tcs;
            lock (this)
            {
                tcs = _idle;
                _idle = null;
            }

            tcs?.TrySetResult();
        }
    }

    /// <summary>In-flight scope.</summary>
    public readonly struct Scope(InFlightTracker tracker) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose() => tracker?.Exit();
    }
}
