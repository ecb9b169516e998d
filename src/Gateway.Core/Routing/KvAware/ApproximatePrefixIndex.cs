using System.Numerics;
using System.Runtime.InteropServices;

namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Approximate prefix index: the gateway's own record of which block-hash chains it routed to which worker
/// (insert-on-route), as SGLang's cache-aware router keeps an approximate radix tree per worker and Dynamo's KV
/// router assumes a routed prefix stays cached for a while when the engine publishes no events.
/// <para>
/// Layout: one hash map from block hash → node holding a bitset of worker indexes (one bit per worker, so one
/// walk over the request's blocks scores every worker at once), plus one <em>residency</em> per (block, worker)
/// with its last-touched time, threaded on two intrusive LRU lists: a per-worker list (a worker with K blocks of
/// KV keeps at most ~K residencies, mirroring its eviction) and a global list (one memory budget across all
/// workers; the globally least-recently-touched residency is evicted when over it, and residencies older than
/// the TTL expire from the same tail). Chains are touched deepest-block-first, so the first block of a prefix
/// is the most recent and tails are evicted before heads (as vLLM frees a sequence's blocks in reverse order).
/// </para>
/// Knobs: TTL (Dynamo assumes 120 s), global budget (max residencies), per-worker capacity (passed at insert),
/// max workers (bitset width). Memory is ~100 bytes per residency, grown lazily up to the budget.
/// Not thread-safe: the owning policy serialises calls. Allocation-free per block once its arrays have grown.
/// </summary>
public sealed class ApproximatePrefixIndex
{
    private const int Nil = -1;

    private readonly TimeProvider _time;
    private readonly long _ttlTicks;
    private readonly int _maxEntries;
    private readonly int _words;
    private readonly int _maxWorkers;

    // block hash -> node slot; node = worker bitset (_words ulongs) + residency count
    private readonly Dictionary<ulong, int> _nodes = [];
    private ulong[] _nodeMask = [];
    private int[] _nodeRefs = [];
    private int _nodeSlots;
    private int _nodeFree = Nil; // free list threaded through _nodeRefs (negative-encoded)

    // (hash, worker) -> residency slot
    private readonly Dictionary<ResidencyKey, int> _residencies = [];
    private ulong[] _resHash = [];
    private int[] _resWorker = [];
    private int[] _resNode = [];
    private long[] _resTouched = [];
    private int[] _gPrev = [], _gNext = [], _wPrev = [], _wNext = [];
    private int _resSlots;
    private int _resFree = Nil; // free list threaded through _gNext
    private int _gHead = Nil, _gTail = Nil; // head = most recent

    private readonly int[] _wHead, _wTail, _wCount;

    /// <summary>Creates an index.</summary>
    /// <param name="time">Clock (virtual in the simulator).</param>
    /// <param name="ttl">Residencies untouched this long are dropped.</param>
    /// <param name="maxEntries">Global budget: most (block, worker) residencies held across all workers.</param>
    /// <param name="maxWorkers">Width of the worker bitset; worker indexes at or above it are ignored.</param>
    public ApproximatePrefixIndex(TimeProvider time, TimeSpan ttl, int maxEntries, int maxWorkers = 256)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxEntries, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWorkers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(ttl, TimeSpan.Zero);
        _time = time;
        _ttlTicks = ttl.Ticks;
        _maxEntries = maxEntries;
        _maxWorkers = maxWorkers;
        _words = (maxWorkers + 63) / 64;
        _wHead = new int[maxWorkers];
        _wTail = new int[maxWorkers];
        _wCount = new int[maxWorkers];
        Array.Fill(_wHead, Nil);
        Array.Fill(_wTail, Nil);
    }

    /// <summary>Residencies held now, across all workers (never above <see cref="MaxEntries"/>).</summary>
    public int Count => _residencies.Count;

    /// <summary>Distinct block hashes held now.</summary>
    public int DistinctBlocks => _nodes.Count;

    /// <summary>The global budget.</summary>
    public int MaxEntries => _maxEntries;

    /// <summary>Bitset width (max workers).</summary>
    public int MaxWorkers => _maxWorkers;

    /// <summary>Number of 64-bit words in a presence mask.</summary>
    internal int MaskWords => _words;

    /// <summary>Residencies evicted so far because a worker's capacity or the global budget was exceeded.</summary>
    public long Evictions { get; private set; }

    /// <summary>Residencies dropped so far because their TTL passed.</summary>
    public long Expirations { get; private set; }

    /// <summary>Residencies held for one worker.</summary>
    public int CountFor(int worker) => (uint)worker < (uint)_maxWorkers ? _wCount[worker] : 0;

    /// <summary>
    /// Records that the chain <paramref name="blockHashes"/> was routed to <paramref name="worker"/>. The worker keeps at
    /// most <paramref name="capacityBlocks"/> residencies (its LRU tail is evicted), and the index never holds more
    /// than <see cref="MaxEntries"/> in all.
    /// </summary>
    public void Insert(int worker, ReadOnlySpan<ulong> blockHashes, int capacityBlocks)
    {
        if ((uint)worker >= (uint)_maxWorkers || blockHashes.IsEmpty)
        {
            return;
        }

        long now = _time.GetUtcNow().UtcTicks;
        Expire(now);
        int cap = Math.Max(1, capacityBlocks);

        // Deepest first: the chain's head ends up most recent, so tails are evicted before heads.
        for (int i = blockHashes.Length - 1; i >= 0; i--)
        {
            Touch(blockHashes[i], worker, now);
            while (_wCount[worker] > cap)
            {
                Evict(_wTail[worker]);
                Evictions++;
            }

            while (_residencies.Count > _maxEntries)
            {
                Evict(_gTail);
                Evictions++;
            }
        }
    }

    /// <summary>
    /// Walks <paramref name="blockHashes"/> once and writes, for every worker index below
    /// <paramref name="matchedBlocks"/>.Length, how many leading blocks that worker holds. Stops at the first block no
    /// worker holds. Returns the longest match.
    /// </summary>
    public int Match(ReadOnlySpan<ulong> blockHashes, Span<int> matchedBlocks)
    {
        Expire(_time.GetUtcNow().UtcTicks);
        matchedBlocks.Clear();
        int n = Math.Min(matchedBlocks.Length, _maxWorkers);
        Span<ulong> running = stackalloc ulong[(n + 63) / 64];
        SetLowBits(running, n);
        int best = 0;
        for (int i = 0; i < blockHashes.Length; i++)
        {
            bool any = false;
            if (_nodes.TryGetValue(blockHashes[i], out int node))
            {
                var mask = _nodeMask.AsSpan(node * _words, running.Length);
                for (int w = 0; w < running.Length; w++)
                {
                    ulong next = running[w] & mask[w];
                    RecordDropped(running[w] & ~next, w, i, matchedBlocks);
                    running[w] = next;
                    any |= next != 0;
                }
            }
            else
            {
                for (int w = 0; w < running.Length; w++)
                {
                    RecordDropped(running[w], w, i, matchedBlocks);
                    running[w] = 0;
                }
            }

            if (!any)
            {
                return best;
            }

            best = i + 1;
        }

        for (int w = 0; w < running.Length; w++)
        {
            RecordDropped(running[w], w, blockHashes.Length, matchedBlocks);
        }

        return best;
    }

    /// <summary>ORs the presence bitset of <paramref name="blockHash"/> into <paramref name="mask"/>; false when no worker holds it.</summary>
    internal bool OrPresence(ulong blockHash, Span<ulong> mask)
    {
        if (!_nodes.TryGetValue(blockHash, out int node))
        {
            return false;
        }

        var m = _nodeMask.AsSpan(node * _words, Math.Min(_words, mask.Length));
        for (int w = 0; w < m.Length; w++)
        {
            mask[w] |= m[w];
        }

        return true;
    }

    /// <summary>Drops expired residencies (also done on every insert and match).</summary>
    public void ExpireNow() => Expire(_time.GetUtcNow().UtcTicks);

    /// <summary>Forgets everything recorded for one worker (it restarted or left the fleet).</summary>
    public void RemoveWorker(int worker)
    {
        if ((uint)worker >= (uint)_maxWorkers)
        {
            return;
        }

        while (_wTail[worker] != Nil)
        {
            Evict(_wTail[worker]);
        }
    }

    /// <summary>Forgets one block of one worker (e.g. the worker reported it evicted).</summary>
    public bool Remove(int worker, ulong blockHash)
    {
        if (_residencies.TryGetValue(new ResidencyKey(blockHash, worker), out int r))
        {
            Evict(r);
            return true;
        }

        return false;
    }

    internal static void SetLowBits(Span<ulong> mask, int bits)
    {
        for (int w = 0; w < mask.Length; w++)
        {
            int lo = w * 64;
            int take = Math.Clamp(bits - lo, 0, 64);
            mask[w] = take == 64 ? ulong.MaxValue : (1UL << take) - 1;
        }
    }

    internal static void RecordDropped(ulong dropped, int word, int matched, Span<int> matchedBlocks)
    {
        while (dropped != 0)
        {
            int bit = BitOperations.TrailingZeroCount(dropped);
            dropped &= dropped - 1;
            int worker = word * 64 + bit;
            if (worker < matchedBlocks.Length)
            {
                matchedBlocks[worker] = matched;
            }
        }
    }

    private void Expire(long now)
    {
        long cutoff = now - _ttlTicks;
        while (_gTail != Nil && _resTouched[_gTail] <= cutoff)
        {
            Evict(_gTail);
            Expirations++;
        }
    }

    private void Touch(ulong hash, int worker, long now)
    {
        ref int slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_residencies, new ResidencyKey(hash, worker), out bool exists);
        if (exists)
        {
            int r = slot;
            _resTouched[r] = now;
            UnlinkGlobal(r);
            LinkGlobalHead(r);
            UnlinkWorker(r, worker);
            LinkWorkerHead(r, worker);
            return;
        }

        int res = AllocResidency();
        slot = res; // `slot` stays valid: nothing below touches _residencies
        int node = GetOrAddNode(hash);
        _nodeMask[node * _words + (worker >> 6)] |= 1UL << (worker & 63);
        _nodeRefs[node]++;
        _resHash[res] = hash;
        _resWorker[res] = worker;
        _resNode[res] = node;
        _resTouched[res] = now;
        LinkGlobalHead(res);
        LinkWorkerHead(res, worker);
        _wCount[worker]++;
    }

    private void Evict(int r)
    {
        int worker = _resWorker[r];
        ulong hash = _resHash[r];
        int node = _resNode[r];
        UnlinkGlobal(r);
        UnlinkWorker(r, worker);
        _wCount[worker]--;
        _residencies.Remove(new ResidencyKey(hash, worker));
        _nodeMask[node * _words + (worker >> 6)] &= ~(1UL << (worker & 63));
        if (--_nodeRefs[node] == 0)
        {
            _nodes.Remove(hash);
            _nodeRefs[node] = -2 - _nodeFree; // encode next free slot
            _nodeFree = node;
        }

        _gNext[r] = _resFree;
        _resFree = r;
    }

    private int GetOrAddNode(ulong hash)
    {
        ref int slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_nodes, hash, out bool exists);
        if (exists)
        {
            return slot;
        }

        int node;
        if (_nodeFree != Nil)
        {
            node = _nodeFree;
            _nodeFree = -2 - _nodeRefs[node];
        }
        else
        {
            if (_nodeSlots == _nodeRefs.Length)
            {
                int size = Grow(_nodeRefs.Length);
                Array.Resize(ref _nodeRefs, size);
                Array.Resize(ref _nodeMask, size * _words);
            }

            node = _nodeSlots++;
        }

        _nodeRefs[node] = 0;
        _nodeMask.AsSpan(node * _words, _words).Clear();
        slot = node;
        return node;
    }

    private int AllocResidency()
    {
        if (_resFree != Nil)
        {
            int r = _resFree;
            _resFree = _gNext[r];
            return r;
        }

        if (_resSlots == _resHash.Length)
        {
            int size = Grow(_resHash.Length);
            Array.Resize(ref _resHash, size);
            Array.Resize(ref _resWorker, size);
            Array.Resize(ref _resNode, size);
            Array.Resize(ref _resTouched, size);
            Array.Resize(ref _gPrev, size);
            Array.Resize(ref _gNext, size);
            Array.Resize(ref _wPrev, size);
            Array.Resize(ref _wNext, size);
        }

        return _resSlots++;
    }

    // Slots never exceed budget + 1 (one residency is added before the budget check evicts).
    private int Grow(int current) => (int)Math.Min(Math.Max(1024L, current * 2L), _maxEntries + 1L);

    private void LinkGlobalHead(int r)
    {
        _gPrev[r] = Nil;
        _gNext[r] = _gHead;
        if (_gHead != Nil)
        {
            _gPrev[_gHead] = r;
        }

        _gHead = r;
        if (_gTail == Nil)
        {
            _gTail = r;
        }
    }

    private void UnlinkGlobal(int r)
    {
        int p = _gPrev[r], n = _gNext[r];
        if (p != Nil)
        {
            _gNext[p] = n;
        }
        else
        {
            _gHead = n;
        }

        if (n != Nil)
        {
            _gPrev[n] = p;
        }
        else
        {
            _gTail = p;
        }
    }

    private void LinkWorkerHead(int r, int w)
    {
        _wPrev[r] = Nil;
        _wNext[r] = _wHead[w];
        if (_wHead[w] != Nil)
        {
            _wPrev[_wHead[w]] = r;
        }

        _wHead[w] = r;
        if (_wTail[w] == Nil)
        {
            _wTail[w] = r;
        }
    }

    private void UnlinkWorker(int r, int w)
    {
        int p = _wPrev[r], n = _wNext[r];
        if (p != Nil)
        {
            _wNext[p] = n;
        }
        else
        {
            _wHead[w] = n;
        }

        if (n != Nil)
        {
            _wPrev[n] = p;
        }
        else
        {
            _wTail[w] = p;
        }
    }

    private readonly struct ResidencyKey(ulong hash, int worker) : IEquatable<ResidencyKey>
    {
        private readonly ulong _hash = hash;
        private readonly int _worker = worker;

        public bool Equals(ResidencyKey other) => _hash == other._hash && _worker == other._worker;

        public override bool Equals(object? obj) => obj is ResidencyKey k && Equals(k);

        // Block hashes are already uniform 64-bit values: fold in the worker and take the low bits.
        public override int GetHashCode() => (int)(_hash ^ (_hash >> 32) ^ ((ulong)(uint)_worker * 0x9E3779B97F4A7C15UL));
    }
}
