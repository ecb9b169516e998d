namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Contexts of sessions between turns, per worker: a session whose turn finished on a worker within the last
/// <c>window</c> is expected back soon (an agent's tool result returns in ~9 s median) and wants its context
/// there, pinned or not. Memory-aware placement counts these blocks as claimed, so a new context is not placed
/// where it would evict a hot one even when retention pinned nothing (or only a prefix). The block count is the
/// finished turn's prompt + expected output; a session's next routed turn takes it out (its context is then in use).
/// Bounded: one entry per session, at most <c>maxEntries</c> (oldest forgotten first); entries leave when the window
/// passes. Not thread-safe (the owning policy serialises calls); no allocation per lookup.
/// </summary>
public sealed class IdleContextBook
{
    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly int _max;
    private readonly Dictionary<string, LinkedListNode<Entry>> _bySession = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _fifo = new(); // oldest first (entries are added at "now", so in time order)
    private readonly long[] _blocks;

    /// <summary>Creates a book for workers 0 .. <paramref name="maxWorkers"/> − 1.</summary>
    public IdleContextBook(TimeProvider time, TimeSpan window, int maxEntries, int maxWorkers)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(maxEntries);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWorkers, 1);
        _time = time;
        _windowTicks = window.Ticks;
        _max = maxEntries;
        _blocks = new long[maxWorkers];
    }

    /// <summary>Sessions idle now (within the window, after expiry at the last call).</summary>
    public int Count => _bySession.Count;

    /// <summary>A turn of <paramref name="session"/> finished on <paramref name="worker"/>, leaving a context of <paramref name="blocks"/> blocks.</summary>
    public void Idle(string session, int worker, int blocks)
    {
        ArgumentNullException.ThrowIfNull(session);
        Busy(session);
        if (_max == 0 || _windowTicks == 0 || (uint)worker >= (uint)_blocks.Length || blocks <= 0)
        {
            return;
        }

        _bySession[session] = _fifo.AddLast(new Entry(session, worker, blocks, _time.GetUtcNow().UtcTicks));
        _blocks[worker] += blocks;
        while (_bySession.Count > _max)
        {
            Remove(_fifo.First!);
        }
    }

    /// <summary>The session's next turn was routed (or the session ended): its context is no longer idle.</summary>
    public void Busy(string session)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (_bySession.TryGetValue(session, out var node))
        {
            Remove(node);
        }
    }

    /// <summary>Drops the entries older than the window. Call once before a batch of <see cref="IdleBlocks"/> reads.</summary>
    public void ExpireNow()
    {
        long now = _time.GetUtcNow().UtcTicks;
        while (_fifo.First is { } first && now - first.Value.Ticks > _windowTicks)
        {
            Remove(first);
        }
    }

    /// <summary>Idle context blocks on <paramref name="worker"/>, not counting <paramref name="except"/>'s own (it is the one returning).</summary>
    public long IdleBlocks(int worker, string? except)
    {
        if ((uint)worker >= (uint)_blocks.Length)
        {
            return 0;
        }

        long sum = _blocks[worker];
        if (except is { Length: > 0 } && _bySession.TryGetValue(except, out var own) && own.Value.Worker == worker)
        {
            sum -= own.Value.Blocks;
        }

        return sum;
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _blocks[node.Value.Worker] -= node.Value.Blocks;
        _bySession.Remove(node.Value.Session);
        _fifo.Remove(node);
    }

    private readonly record struct Entry(string Session, int Worker, int Blocks, long Ticks);
}
