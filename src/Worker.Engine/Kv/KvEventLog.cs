namespace Worker.Engine;

/// <summary>Kinds of KV events, as vLLM's KV event stream names them (plus pin_dropped).</summary>
public enum KvEventType
{
    /// <summary>Blocks became cached (complete and registered under their hash); <see cref="KvEvent.ParentBlockHash"/> is the block before the first.</summary>
    Stored,

    /// <summary>Blocks were evicted from the prefix cache.</summary>
    Removed,

    /// <summary>The whole prefix cache was cleared.</summary>
    Cleared,

    /// <summary>A pin was dropped under memory pressure or the pinned-share cap (its blocks stay cached until evicted).</summary>
    PinDropped,
}

/// <summary>Which memory tier a KV event is about (vLLM's KV events call it the medium).</summary>
public enum KvTier
{
    /// <summary>The GPU's HBM block pool: blocks a request can attend to at once (wire medium <c>gpu</c>).</summary>
    Hbm,

    /// <summary>The host-memory tier: blocks that must be reloaded over PCIe before use (wire medium <c>cpu</c>).</summary>
    Host,
}

/// <summary>
/// One KV event. <see cref="Seq"/> is strictly increasing, starting at 1. <see cref="Tier"/> says which tier the blocks
/// entered or left (a demotion is a removed event on HBM plus, for blocks not yet held there, a stored event on the host).
/// </summary>
public sealed record KvEvent(long Seq, KvEventType Type, ulong[] BlockHashes, ulong? ParentBlockHash, int BlockSize, KvTier Tier = KvTier.Hbm)
{
    /// <summary>Wire name of the tier: gpu or cpu.</summary>
    public string MediumName => Tier == KvTier.Host ? "cpu" : "gpu";

    /// <summary>Wire name: stored, removed, cleared, pin_dropped.</summary>
    public string TypeName => Type switch
    {
        KvEventType.Stored => "stored",
        KvEventType.Removed => "removed",
        KvEventType.Cleared => "cleared",
        _ => "pin_dropped",
    };
}

/// <summary>
/// Snapshot of the cached block hashes as of event <see cref="Seq"/> (consumers continue after it): those in HBM, and
/// those held by the host tier (empty without one).
/// </summary>
public sealed record KvSnapshot(long Seq, int BlockSize, ulong[] BlockHashes)
{
    /// <summary>Hashes held by the host tier (sorted).</summary>
    public ulong[] HostBlockHashes { get; init; } = [];
}

/// <summary>
/// Bounded ring of KV events with a mirror of the cached-hash set, so SSE consumers on other threads can read,
/// wait and resync while the engine (single-threaded) appends. Thread-safe; never blocks a writer on a reader:
/// waiters get a <see cref="TaskCompletionSource"/> that is swapped under the lock and completed outside it.
/// </summary>
public sealed class KvEventLog
{
    private readonly object _gate = new();
    private readonly KvEvent[] _ring;
    private readonly HashSet<ulong> _cached = [];
    private readonly HashSet<ulong> _hostCached = [];
    private long _lastSeq;
    private int _count;
    private TaskCompletionSource _signal = NewSignal();

    public KvEventLog(int blockSize, int capacity = 100_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        BlockSize = blockSize;
        _ring = new KvEvent[capacity];
    }

    /// <summary>Block size stamped on every event.</summary>
    public int BlockSize { get; }

    /// <summary>Ring capacity.</summary>
    public int Capacity => _ring.Length;

    /// <summary>Seq of the newest event (0 if none).</summary>
    public long LastSeq
    {
        get { lock (_gate) { return _lastSeq; } }
    }

    /// <summary>Seq of the oldest event still held (LastSeq + 1 when empty).</summary>
    public long FirstSeq
    {
        get { lock (_gate) { return _lastSeq - _count + 1; } }
    }

    /// <summary>Appends an event and wakes waiters. Returns its seq.</summary>
    public long Append(KvEventType type, ulong[] blockHashes, ulong? parentBlockHash = null, KvTier tier = KvTier.Hbm)
    {
        TaskCompletionSource toSignal;
        long seq;
        lock (_gate)
        {
            seq = ++_lastSeq;
            _ring[(int)(seq % _ring.Length)] = new KvEvent(seq, type, blockHashes, parentBlockHash, BlockSize, tier);
            if (_count < _ring.Length)
            {
                _count++;
            }

            var set = tier == KvTier.Host ? _hostCached : _cached;
            switch (type)
            {
                case KvEventType.Stored:
                    foreach (var h in blockHashes)
                    {
                        set.Add(h);
                    }

                    break;
                case KvEventType.Removed:
                    foreach (var h in blockHashes)
                    {
                        set.Remove(h);
                    }

                    break;
                case KvEventType.Cleared:
                    _cached.Clear();
                    _hostCached.Clear();
                    break;
            }

            toSignal = _signal;
            _signal = NewSignal();
        }

        toSignal.TrySetResult();
        return seq;
    }

    /// <summary>
    /// Copies events with seq &gt; <paramref name="afterSeq"/> into <paramref name="destination"/> (at most <paramref name="max"/>).
    /// <paramref name="gap"/> is true when events after <paramref name="afterSeq"/> were already overwritten, or when
    /// <paramref name="afterSeq"/> is ahead of this log (a consumer of an earlier incarnation of the worker): the consumer must
    /// resync from <see cref="Snapshot"/>; the events returned then start at the oldest one held.
    /// </summary>
    public int ReadAfter(long afterSeq, List<KvEvent> destination, out bool gap, int max = int.MaxValue)
    {
        ArgumentNullException.ThrowIfNull(destination);
        lock (_gate)
        {
            long first = _lastSeq - _count + 1;
            gap = afterSeq + 1 < first || afterSeq > _lastSeq;
            long from = afterSeq > _lastSeq ? first : Math.Max(afterSeq + 1, first);
            int n = 0;
            for (long s = from; s <= _lastSeq && n < max; s++, n++)
            {
                destination.Add(_ring[(int)(s % _ring.Length)]);
            }

            return n;
        }
    }

    /// <summary>Completes when an event with seq &gt; <paramref name="afterSeq"/> exists (at once if it already does).</summary>
    public Task WaitAsync(long afterSeq, CancellationToken cancellationToken = default)
    {
        Task wait;
        lock (_gate)
        {
            if (_lastSeq > afterSeq)
            {
                return Task.CompletedTask;
            }

            wait = _signal.Task;
        }

        return wait.WaitAsync(cancellationToken);
    }

    /// <summary>The cached hashes of each tier (sorted) as of <see cref="KvSnapshot.Seq"/>, consistent with the event stream.</summary>
    public KvSnapshot Snapshot()
    {
        lock (_gate)
        {
            var hashes = new ulong[_cached.Count];
            _cached.CopyTo(hashes);
            Array.Sort(hashes);
            var host = new ulong[_hostCached.Count];
            _hostCached.CopyTo(host);
            Array.Sort(host);
            return new KvSnapshot(_lastSeq, BlockSize, hashes) { HostBlockHashes = host };
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
