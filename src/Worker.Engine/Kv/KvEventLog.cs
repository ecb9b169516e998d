using Worker.Contract;

namespace Worker.Engine;

/// <summary>
/// Bounded ring of KV events with a mirror of the cached-hash set, so SSE consumers on other threads can read,
/// wait and resync while the engine (single-threaded) appends. Thread-safe; never blocks a writer on a reader:
/// waiters share a <see cref="TaskCompletionSource"/> that an append takes under the lock and completes outside it.
/// <para>
/// Memory is fixed at construction: events are kept as structs in one preallocated array and their block hashes in
/// one preallocated hash ring, both written through once (so their pages are resident from the start), and a
/// <see cref="KvEvent"/> object (the worker protocol's own record, published as it is) is made only for a reader. The ring holds the newest <see cref="Capacity"/> events
/// or the newest <see cref="HashCapacity"/> block hashes, whichever is fewer (about 24 bytes per event slot plus
/// 8 per hash slot), so a long run does not grow it: it is as large after its first event as after its millionth.
/// An event with more hashes than <see cref="HashCapacity"/> is appended as several events of at most that many
/// (a stored chain split this way names the previous part's last block as its parent).
/// </para>
/// </summary>
public sealed class KvEventLog
{
    private readonly object _gate = new();
    private readonly Entry[] _ring;
    private readonly ulong[] _hashes;
    private readonly HashSet<ulong> _cached;
    private readonly HashSet<ulong> _hostCached;
    private long _lastSeq;
    private int _count;
    private long _hashEnd; // hashes ever written; an event's hashes are [HashStart, HashStart + HashCount) modulo the hash ring
    private TaskCompletionSource? _signal; // made by the first waiter after an append: appends allocate nothing

    /// <summary>Creates a log.</summary>
    /// <param name="blockSize">Block size stamped on every event.</param>
    /// <param name="capacity">Most events held.</param>
    /// <param name="hashCapacity">Most block hashes held across those events; default 4 per event slot.</param>
    /// <param name="expectedCachedBlocks">Blocks the cache can hold (the KV pool), so the cached-hash mirror is sized once.</param>
    public KvEventLog(int blockSize, int capacity = 100_000, int hashCapacity = 0, int expectedCachedBlocks = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(hashCapacity);
        ArgumentOutOfRangeException.ThrowIfNegative(expectedCachedBlocks);
        BlockSize = blockSize;
        _ring = new Entry[capacity];
        _hashes = new ulong[hashCapacity > 0 ? hashCapacity : (int)Math.Min(Array.MaxLength, 4L * capacity)];
        _cached = new HashSet<ulong>(expectedCachedBlocks);
        _hostCached = [];

        // Make the pages resident now (the runtime may hand out fresh zero pages untouched): the process's resident
        // memory then holds the ring at its full size from the start instead of growing as the ring fills.
        Array.Fill(_ring, new Entry { Type = (byte)KvEventType.Cleared });
        Array.Fill(_hashes, ulong.MaxValue);
    }

    /// <summary>Block size stamped on every event.</summary>
    public int BlockSize { get; }

    /// <summary>Most events held.</summary>
    public int Capacity => _ring.Length;

    /// <summary>Most block hashes held, across the events held.</summary>
    public int HashCapacity => _hashes.Length;

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

    /// <summary>Events held now.</summary>
    public int Count
    {
        get { lock (_gate) { return _count; } }
    }

    /// <summary>Appends an event and wakes waiters. Returns its seq (the last part's, when it had to be split).</summary>
    public long Append(KvEventType type, ulong[] blockHashes, ulong? parentBlockHash = null, KvMedium medium = KvMedium.Gpu)
    {
        ArgumentNullException.ThrowIfNull(blockHashes);
        TaskCompletionSource? toSignal;
        long seq;
        lock (_gate)
        {
            ReadOnlySpan<ulong> rest = blockHashes;
            ulong? parent = parentBlockHash;
            do
            {
                var part = rest[..Math.Min(rest.Length, _hashes.Length)];
                seq = AppendUnlocked(type, part, parent, medium);
                rest = rest[part.Length..];
                parent = type == KvEventType.Stored && !part.IsEmpty ? part[^1] : parentBlockHash;
            }
            while (!rest.IsEmpty);

            var set = medium == KvMedium.Cpu ? _hostCached : _cached;
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
            _signal = null;
        }

        toSignal?.TrySetResult();
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
                ref readonly var e = ref _ring[(int)(s % _ring.Length)];
                var hashes = new ulong[e.HashCount];
                int at = (int)(e.HashStart % _hashes.Length);
                int head = Math.Min(e.HashCount, _hashes.Length - at);
                _hashes.AsSpan(at, head).CopyTo(hashes);
                _hashes.AsSpan(0, e.HashCount - head).CopyTo(hashes.AsSpan(head));
                destination.Add(new KvEvent(s, (KvEventType)e.Type, hashes, e.HasParent ? e.Parent : null, (KvMedium)e.Medium, BlockSize));
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

            _signal ??= NewSignal();
            wait = _signal.Task;
        }

        return wait.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// The cached hashes of each tier (sorted) as of <see cref="KvSnapshotBody.Seq"/>, consistent with the event stream
    /// (<c>GET /worker/kv/snapshot</c>'s body; consumers continue after its seq).
    /// </summary>
    public KvSnapshotBody Snapshot()
    {
        lock (_gate)
        {
            var hashes = new ulong[_cached.Count];
            _cached.CopyTo(hashes);
            Array.Sort(hashes);
            var host = new ulong[_hostCached.Count];
            _hostCached.CopyTo(host);
            Array.Sort(host);
            return new KvSnapshotBody(_lastSeq, BlockSize, hashes, host);
        }
    }

    // One event whose hashes fit the hash ring: drops the oldest events until both an event slot and its hashes are free.
    private long AppendUnlocked(KvEventType type, ReadOnlySpan<ulong> hashes, ulong? parent, KvMedium medium)
    {
        while (_count == _ring.Length || (_count > 0 && _hashEnd + hashes.Length - _ring[(int)((_lastSeq - _count + 1) % _ring.Length)].HashStart > _hashes.Length))
        {
            _count--;
        }

        long seq = ++_lastSeq;
        int at = (int)(_hashEnd % _hashes.Length);
        int head = Math.Min(hashes.Length, _hashes.Length - at);
        hashes[..head].CopyTo(_hashes.AsSpan(at));
        hashes[head..].CopyTo(_hashes);
        _ring[(int)(seq % _ring.Length)] = new Entry
        {
            HashStart = _hashEnd,
            HashCount = hashes.Length,
            Parent = parent ?? 0,
            HasParent = parent.HasValue,
            Type = (byte)type,
            Medium = (byte)medium,
        };
        _hashEnd += hashes.Length;
        _count++;
        return seq;
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private struct Entry
    {
        public long HashStart;
        public ulong Parent;
        public int HashCount;
        public byte Type; // KvEventType and KvMedium as bytes: 24 bytes a slot
        public byte Medium;
        public bool HasParent;
    }
}
