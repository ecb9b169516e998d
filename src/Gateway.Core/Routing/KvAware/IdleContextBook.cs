namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Contexts of sessions between turns, per worker: a session whose turn finished on a worker within the last
/// <c>window</c> is expected back soon (an agent's tool result returns in ~9 s median) and wants its context
/// there, pinned or not. Memory-aware placement counts these blocks as claimed, so a new context is not placed
/// where it would evict a hot one even when retention pinned nothing (or only a prefix). The block count is the
/// finished turn's prompt + expected output; a session's next routed turn takes it out (its context is then in use).
/// <para>
/// Residency: a context the worker has since evicted is not hot memory any more, and counting it makes the worker look
/// fuller than it is. With a <see cref="PreciseIndex"/>, each entry watches its last prompt block there
/// (<see cref="PreciseIndex.Watch"/>), weighted by the entry's blocks, and <see cref="HeldBlocks"/> counts only the
/// contexts whose last prompt block the worker's KV events still confirm. The engine releases a sequence tail-first
/// into its LRU, so the last block is the first one evicted: once it is gone the context is being taken apart and will
/// be re-prefilled anyway. Workers without events have no eviction signal; <see cref="IdleBlocks"/> counts every entry.
/// </para>
/// Bounded: one entry per session, at most <c>maxEntries</c> (oldest forgotten first); entries leave when the window
/// passes. Cost: O(1) per idle / busy / read (one watch change in the index per entry added or removed; the index
/// updates the held sum per stored or removed block), so nothing per decision grows with sessions or fleet size.
/// Not thread-safe (the owning policy serialises calls); no allocation per lookup.
/// </summary>
public sealed class IdleContextBook
{
    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly int _max;
    private readonly Dictionary<string, LinkedListNode<Entry>> _bySession = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _fifo = new(); // oldest first (entries are added at "now", so in time order)
    private readonly long[] _blocks;
    private readonly PreciseIndex? _index;

    /// <summary>Creates a book for workers 0 .. <paramref name="maxWorkers"/> − 1; with <paramref name="index"/>, entries watch their last prompt block there.</summary>
    public IdleContextBook(TimeProvider time, TimeSpan window, int maxEntries, int maxWorkers, PreciseIndex? index = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, TimeSpan.Zero);
        ArgumentOutOfRangeException.ThrowIfNegative(maxEntries);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWorkers, 1);
        _time = time;
        _windowTicks = window.Ticks;
        _max = maxEntries;
        _blocks = new long[maxWorkers];
        _index = index;
    }

    /// <summary>Sessions idle now (within the window, after expiry at the last call).</summary>
    public int Count => _bySession.Count;

    /// <summary>
    /// A turn of <paramref name="session"/> finished on <paramref name="worker"/>, leaving a context of <paramref name="blocks"/>
    /// blocks whose last prompt block is <paramref name="lastBlockHash"/> (null when the prompt has no full block: never held).
    /// </summary>
    public void Idle(string session, int worker, int blocks, ulong? lastBlockHash = null)
    {
        ArgumentNullException.ThrowIfNull(session);
        Busy(session);
        if (_max == 0 || _windowTicks == 0 || (uint)worker >= (uint)_blocks.Length || blocks <= 0)
        {
            return;
        }

        _bySession[session] = _fifo.AddLast(new Entry(session, worker, blocks, lastBlockHash, _time.GetUtcNow().UtcTicks));
        _blocks[worker] += blocks;
        if (lastBlockHash is { } tail)
        {
            _index?.Watch(worker, tail, blocks);
        }

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

    /// <summary>
    /// Idle context blocks <paramref name="worker"/> still holds: the entries whose last prompt block its KV events confirm
    /// (the index's watched sum), not counting <paramref name="except"/>'s own. Without an index, the same as <see cref="IdleBlocks"/>.
    /// </summary>
    public long HeldBlocks(int worker, string? except)
    {
        if (_index is null)
        {
            return IdleBlocks(worker, except);
        }

        if ((uint)worker >= (uint)_blocks.Length)
        {
            return 0;
        }

        long sum = _index.WatchedHeld(worker);
        if (except is { Length: > 0 } && _bySession.TryGetValue(except, out var own) && own.Value.Worker == worker
            && own.Value.LastBlock is { } tail && _index.Holds(worker, tail))
        {
            sum -= own.Value.Blocks;
        }

        return Math.Max(0, sum);
    }

    private void Remove(LinkedListNode<Entry> node)
    {
        _blocks[node.Value.Worker] -= node.Value.Blocks;
        if (node.Value.LastBlock is { } tail)
        {
            _index?.Unwatch(node.Value.Worker, tail, node.Value.Blocks);
        }

        _bySession.Remove(node.Value.Session);
        _fifo.Remove(node);
    }

    private readonly record struct Entry(string Session, int Worker, int Blocks, ulong? LastBlock, long Ticks);
}
