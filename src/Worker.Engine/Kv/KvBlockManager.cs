using Worker.Contract;

namespace Worker.Engine;

/// <summary>
/// Paged KV block pool with a prefix cache, after vLLM's block manager (PagedAttention, SOSP'23; V1 KVCacheManager)
/// plus retention pins.
/// <list type="bullet">
/// <item>A fixed pool of blocks; each live sequence holds a block table of block ids (ref-counted: shared prefix
/// blocks are referenced by several sequences).</item>
/// <item>Prefix cache: a complete prompt block is registered under its chained hash (hash → block). A lookup walks
/// the request's hashes from the first and stops at the first miss, so only a true prefix hits.</item>
/// <item>Unreferenced, unpinned cached blocks sit in an LRU list and are evicted head-first when the never-cached
/// free blocks run out; a sequence's blocks are released tail-first so a prompt's last blocks are evicted before its
/// shared first blocks (as vLLM does).</item>
/// <item>Pins (retention hints): a pin holds cached blocks out of the LRU until its TTL (read from the
/// <see cref="TimeProvider"/>) passes or it is released. Pinned blocks never exceed <c>maxPinnedFraction</c> of the pool.
/// When an allocation would fail, pins are dropped lowest (value, priority, expiry, age) first, each reported as a
/// <see cref="KvEventType.PinDropped"/> event and counted. A pin protects for its TTL and no longer: the blocks of a pin
/// that expires or is dropped rejoin the LRU where their last use places them (as if never pinned), not as just used;
/// a released pin's blocks rejoin as just used (KvBlockManager.Pins.cs). What pins cost and save against plain LRU is counted
/// (KvBlockManager.PinCost.cs).</item>
/// <item>Eviction age (Che's characteristic time T_c of the LRU, <see cref="EvictionAgeSeconds"/>): each cached block
/// remembers when it last entered the LRU (became unreferenced and unpinned, or its pin lapsed); when the LRU evicts it, its age
/// now − that time is folded into a time-decayed mean (each evicted block weighs 1; older evictions are discounted by
/// 2^(−Δt / half-life), <c>evictionAgeHalfLifeSeconds</c>, default 60 s of the <see cref="TimeProvider"/>'s time).
/// Measurement only: it changes no eviction decision.</item>
/// <item>Host tier (optional, <see cref="HostKvTier"/>): evicted cached blocks are written back to host memory instead of
/// discarded; a prefix walk continues into the host tier and reloads what it finds (KvBlockManager.Tiers.cs).</item>
/// </list>
/// Not thread-safe (the engine serialises calls); events go to a thread-safe <see cref="KvEventLog"/>.
/// </summary>
public sealed partial class KvBlockManager
{
    private const int None = -1;

    private readonly int[] _refCount;
    private readonly int[] _pinCount;
    private readonly ulong[] _hash;
    private readonly bool[] _hasHash;
    private readonly int[] _prev;
    private readonly int[] _next;
    private readonly bool[] _inLru;
    private readonly long[] _idleSince; // UTC ticks (TimeProvider) of the block's last use (when it last became unreferenced)
    private readonly long[] _lruSince; // UTC ticks when it last entered the LRU (a lapsed pin's blocks: when the pin ended)
    private readonly int[] _free;
    private readonly Dictionary<ulong, int> _cache; // sized to the pool once: it never holds more than every block
    private readonly List<ulong> _scratchHashes = [];
    private readonly TimeProvider _time;
    private readonly KvEventLog _events;
    private int _freeCount;
    private int _lruHead = None;
    private int _lruTail = None;
    private int _lruCount;
    private int _usedBlocks;
    private int _pinnedBlocks;
    private int _pinnedIdleBlocks; // pinned and referenced by no sequence: what dropping every pin would free
    private readonly double _ageHalfLifeTicks;
    private double _ageWeight; // decayed count of evictions
    private double _ageSum; // decayed sum of their ages (ticks)
    private long _lastEvictionAt;

    public KvBlockManager(int totalBlocks, int blockSize, double maxPinnedFraction, TimeProvider time, KvEventLog events, double evictionAgeHalfLifeSeconds = 60, int hostBlocks = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hostBlocks, 0);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(evictionAgeHalfLifeSeconds, 0.0);
        ArgumentOutOfRangeException.ThrowIfLessThan(totalBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPinnedFraction, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxPinnedFraction, 1.0);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(events);
        TotalBlocks = totalBlocks;
        BlockSize = blockSize;
        MaxPinnedBlocks = (int)Math.Floor(totalBlocks * maxPinnedFraction);
        _time = time;
        _events = events;
        _cache = new Dictionary<ulong, int>(totalBlocks);
        _refCount = new int[totalBlocks];
        _pinCount = new int[totalBlocks];
        _hash = new ulong[totalBlocks];
        _hasHash = new bool[totalBlocks];
        _prev = new int[totalBlocks];
        _next = new int[totalBlocks];
        _inLru = new bool[totalBlocks];
        _idleSince = new long[totalBlocks];
        _lruSince = new long[totalBlocks];
        _ageHalfLifeTicks = evictionAgeHalfLifeSeconds * TimeSpan.TicksPerSecond;
        _readyAt = new long[totalBlocks];
        Host = hostBlocks > 0 ? new HostKvTier(hostBlocks, maxPinnedFraction, time, events) : null;
        _free = new int[totalBlocks];
        for (int i = 0; i < totalBlocks; i++)
        {
            _free[i] = totalBlocks - 1 - i; // pop order 0, 1, 2, ...
        }

        _freeCount = totalBlocks;
    }

    public int TotalBlocks { get; }
    public int BlockSize { get; }

    /// <summary>Most blocks pins may hold (floor of pool × max pinned fraction).</summary>
    public int MaxPinnedBlocks { get; }

    /// <summary>Blocks allocatable without dropping pins: never-cached free blocks + evictable cached blocks.</summary>
    public int AvailableBlocks => _freeCount + _lruCount;

    /// <summary>Blocks referenced by at least one sequence.</summary>
    public int UsedBlocks => _usedBlocks;

    /// <summary>Blocks held by at least one pin.</summary>
    public int PinnedBlocks => _pinnedBlocks;

    /// <summary>Blocks registered in the prefix cache (referenced or not).</summary>
    public int CachedBlocks => _cache.Count;

    /// <summary>Cached blocks that nothing references or pins (the LRU list).</summary>
    public int EvictableBlocks => _lruCount;

    /// <summary>Pinned blocks that no sequence references (freed if every pin were dropped).</summary>
    public int PinnedIdleBlocks => _pinnedIdleBlocks;

    /// <summary>Cached blocks evicted to make room.</summary>
    public long EvictionsTotal { get; private set; }

    /// <summary>
    /// Che's characteristic time of the LRU as measured: the time-decayed mean age (seconds since it last became idle) of
    /// the cached blocks the LRU evicted, or, when larger, the age of the oldest idle cached block now (it has survived
    /// that long: once evictions stop, the estimate grows with it). <see cref="double.PositiveInfinity"/> until the first
    /// eviction (nothing has had to leave: an idle block survives any gap so far).
    /// </summary>
    public double EvictionAgeSeconds
    {
        get
        {
            if (_ageWeight <= 0)
            {
                return double.PositiveInfinity;
            }

            double ticks = _ageSum / _ageWeight;
            if (_lruHead != None)
            {
                ticks = Math.Max(ticks, _time.GetUtcNow().UtcTicks - _lruSince[_lruHead]);
            }

            return ticks / TimeSpan.TicksPerSecond;
        }
    }

    /// <summary>How many leading hashes are cached now.</summary>
    public int CachedPrefixBlocks(ReadOnlySpan<ulong> hashes)
    {
        int n = 0;
        while (n < hashes.Length && _cache.ContainsKey(hashes[n]))
        {
            n++;
        }

        return n;
    }

    /// <summary>True if the hash is registered in the prefix cache.</summary>
    public bool IsCached(ulong hash) => _cache.ContainsKey(hash);

    /// <summary>Reference count of a block (for tests and diagnostics).</summary>
    public int RefCount(int block) => _refCount[block];

    /// <summary>True if at least one pin holds the block registered under <paramref name="hash"/>.</summary>
    public bool IsPinned(ulong hash) => _cache.TryGetValue(hash, out int b) && _pinCount[b] > 0;

    /// <summary>
    /// Appends to <paramref name="table"/> the cached blocks of the longest cached prefix of <paramref name="hashes"/>
    /// (at most <paramref name="maxBlocks"/>), taking a reference on each. Returns how many hit.
    /// </summary>
    public int AcquireCachedPrefix(ReadOnlySpan<ulong> hashes, int maxBlocks, List<int> table)
    {
        int limit = Math.Min(hashes.Length, maxBlocks);
        int hits = 0;
        while (hits < limit && _cache.TryGetValue(hashes[hits], out int block))
        {
            Reference(block);
            table.Add(block);
            hits++;
        }

        return hits;
    }

    /// <summary>
    /// Allocates <paramref name="count"/> fresh blocks onto <paramref name="table"/>: never-cached blocks first, then the
    /// least recently used cached ones (evicted, reported as removed). If that is not enough but dropping pins would make it
    /// so, pins are dropped lowest value first. Returns false, changing nothing, if the blocks cannot be found.
    /// </summary>
    public bool TryAllocate(int count, List<int> table)
    {
        if (count <= 0)
        {
            return true;
        }

        ExpirePins();
        if (AvailableBlocks < count && !DropPinsToFree(count))
        {
            return false;
        }

        _scratchHashes.Clear();
        _scratchBlocks.Clear();
        long now = 0;
        for (int i = 0; i < count; i++)
        {
            int block;
            if (_freeCount > 0)
            {
                block = _free[--_freeCount];
            }
            else
            {
                block = _lruHead;
                if (_scratchHashes.Count == 0)
                {
                    now = DecayEvictionAges();
                }

                _ageWeight += 1;
                _ageSum += Math.Max(0, now - _lruSince[block]);
                LruRemove(block);
                _cache.Remove(_hash[block]);
                _hasHash[block] = false;
                _scratchHashes.Add(_hash[block]);
                _scratchBlocks.Add(block);
                EvictionsTotal++;
            }

            _refCount[block] = 1;
            _readyAt[block] = 0;
            _usedBlocks++;
            table.Add(block);
        }

        if (_scratchHashes.Count > 0)
        {
            _events.Append(KvEventType.Removed, [.. _scratchHashes]);
            StoreToHost(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_scratchHashes), _scratchBlocks); // write-back (demotion)
        }

        return true;
    }

    /// <summary>
    /// Registers the blocks of <paramref name="table"/> that became complete when the sequence's computed tokens went from
    /// <paramref name="oldComputed"/> to <paramref name="newComputed"/>, under <paramref name="hashes"/> (prompt blocks only).
    /// A hash already held by another block is left alone (the duplicate stays private, as in vLLM). Emits stored events,
    /// one per contiguous run, with the parent hash of the run's first block.
    /// </summary>
    public void MarkComputed(List<int> table, ReadOnlySpan<ulong> hashes, int oldComputed, int newComputed)
    {
        int first = oldComputed / BlockSize;
        int end = Math.Min(Math.Min(newComputed / BlockSize, hashes.Length), table.Count);
        int runStart = -1;
        _scratchHashes.Clear();
        for (int i = first; i < end; i++)
        {
            int block = table[i];
            bool registered = false;
            ShadowTouch(hashes[i]);
            if (!_hasHash[block] && _cache.TryAdd(hashes[i], block))
            {
                _hash[block] = hashes[i];
                _hasHash[block] = true;
                registered = true;
            }

            if (registered)
            {
                if (runStart < 0)
                {
                    runStart = i;
                }

                _scratchHashes.Add(hashes[i]);
            }
            else if (runStart >= 0)
            {
                EmitStored(hashes, runStart);
                runStart = -1;
            }
        }

        if (runStart >= 0)
        {
            EmitStored(hashes, runStart);
        }
    }

    /// <summary>Drops the references of a block table (tail first) and clears it.</summary>
    public void Free(List<int> table)
    {
        for (int i = table.Count - 1; i >= 0; i--)
        {
            int block = table[i];
            if (_hasHash[block])
            {
                ShadowTouch(_hash[block]); // last used now, tail first as the LRU
            }

            if (--_refCount[block] == 0)
            {
                _usedBlocks--;
                if (_pinCount[block] > 0)
                {
                    _pinnedIdleBlocks++;
                    _idleSince[block] = _time.GetUtcNow().UtcTicks; // its last use, where it rejoins the LRU if its pin lapses
                }

                ReleaseIfIdle(block);
            }
        }

        table.Clear();
    }

    /// <summary>
    /// Clears the prefix cache (vLLM reset_prefix_cache): drops every pin, forgets every hash (blocks in use stay with
    /// their sequences but are no longer shareable) and emits one cleared event.
    /// </summary>
    public void Clear()
    {
        foreach (var pin in new List<PinEntry>(_pins.Values))
        {
            Unpin(pin);
        }

        while (_lruHead != None)
        {
            int b = _lruHead;
            LruRemove(b);
            _hasHash[b] = false;
            _free[_freeCount++] = b;
        }

        foreach (int b in _cache.Values)
        {
            _hasHash[b] = false;
        }

        _cache.Clear();
        ClearPinCost();
        Host?.Clear();
        Copier?.Clear();
        _events.Append(KvEventType.Cleared, []);
    }

    /// <summary>Discounts the eviction-age sums by the time since the last eviction; returns now in UTC ticks.</summary>
    private long DecayEvictionAges()
    {
        long now = _time.GetUtcNow().UtcTicks;
        if (_ageWeight > 0 && now > _lastEvictionAt)
        {
            double decay = Math.Pow(2, -(now - _lastEvictionAt) / _ageHalfLifeTicks);
            _ageWeight *= decay;
            _ageSum *= decay;
        }

        _lastEvictionAt = now;
        return now;
    }

    private void EmitStored(ReadOnlySpan<ulong> hashes, int runStart)
    {
        ulong? parent = runStart == 0 ? null : hashes[runStart - 1];
        _events.Append(KvEventType.Stored, [.. _scratchHashes], parent);
        _scratchHashes.Clear();
    }

    private void Reference(int block)
    {
        if (_refCount[block]++ == 0)
        {
            _usedBlocks++;
            if (_pinCount[block] > 0)
            {
                _pinnedIdleBlocks--;
            }

            if (_inLru[block])
            {
                LruRemove(block);
            }
        }
    }

    /// <summary>An unreferenced, unpinned block goes to the LRU (as just used) if cached, else to the free list.</summary>
    private void ReleaseIfIdle(int block)
    {
        if (_refCount[block] != 0 || _pinCount[block] != 0)
        {
            return;
        }

        if (_hasHash[block])
        {
            _idleSince[block] = _lruSince[block] = _time.GetUtcNow().UtcTicks;
            LruAppend(block);
        }
        else
        {
            _free[_freeCount++] = block;
        }
    }

    private void LruAppend(int block)
    {
        _prev[block] = _lruTail;
        _next[block] = None;
        if (_lruTail != None)
        {
            _next[_lruTail] = block;
        }
        else
        {
            _lruHead = block;
        }

        _lruTail = block;
        _inLru[block] = true;
        _lruCount++;
    }

    private void LruRemove(int block)
    {
        int p = _prev[block], n = _next[block];
        if (p != None)
        {
            _next[p] = n;
        }
        else
        {
            _lruHead = n;
        }

        if (n != None)
        {
            _prev[n] = p;
        }
        else
        {
            _lruTail = p;
        }

        _inLru[block] = false;
        _lruCount--;
    }
}
