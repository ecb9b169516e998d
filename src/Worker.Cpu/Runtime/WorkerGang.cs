namespace Worker.Cpu;

/// <summary>
/// A small persistent thread gang for the kernels: <see cref="Run"/> hands out item indices 0..count-1 through one
/// atomic counter (dynamic scheduling, so a descheduled thread on a shared machine does not stall the step) to the
/// caller plus <c>threads - 1</c> background threads, and returns when every item is done. The body is a cached
/// delegate taking (item, worker); job parameters live in the caller's fields, so a run allocates nothing.
/// </summary>
internal sealed class WorkerGang : IDisposable
{
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim _go = new(0);
    private readonly ManualResetEventSlim _done = new(false, spinCount: 200);
    private Action<int, int>? _body;
    private int _count;
    private int _next;
    private int _pending;
    private volatile bool _stopping;
    private Exception? _error;

    public int Threads { get; }

    public WorkerGang(int threads)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        Threads = threads;
        _threads = new Thread[threads - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            int worker = i + 1;
            _threads[i] = new Thread(() => Loop(worker)) { IsBackground = true, Name = $"cpu-kernel-{worker}" };
            _threads[i].Start();
        }
    }

    public void Run(int count, Action<int, int> body)
    {
        if (count <= 0) return;
        if (_threads.Length == 0 || count == 1)
        {
            for (int i = 0; i < count; i++) body(i, 0);
            return;
        }
        _body = body;
        _count = count;
        _error = null;
        Volatile.Write(ref _next, 0);
        Volatile.Write(ref _pending, _threads.Length);
        _done.Reset();
        _go.Release(_threads.Length);
        try
        {
            Drain(0);
        }
        finally
        {
            _done.Wait();
            _body = null;
        }
        if (_error is { } e) throw new AggregateException("kernel worker failed", e);
    }

    private void Drain(int worker)
    {
        var body = _body!;
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < _count) body(i, worker);
    }

    private void Loop(int worker)
    {
        while (true)
        {
            _go.Wait();
            if (_stopping) return;
            try
            {
                Drain(worker);
            }
            catch (Exception e)
            {
                _error = e;
                Volatile.Write(ref _next, int.MaxValue / 2);
            }
            if (Interlocked.Decrement(ref _pending) == 0) _done.Set();
        }
    }

    public void Dispose()
    {
        _stopping = true;
        if (_threads.Length > 0) _go.Release(_threads.Length);
        foreach (var t in _threads) t.Join();
        _go.Dispose();
        _done.Dispose();
    }
}
