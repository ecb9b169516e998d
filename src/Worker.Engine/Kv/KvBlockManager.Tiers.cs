using Worker.Contract;

namespace Worker.Engine;

/// <summary>The host tier side of the block manager: tiered prefix walk with reload, host pins, demotion and prefetch.</summary>
public sealed partial class KvBlockManager
{
    private readonly long[] _readyAt; // UTC ticks until which a prefetched block's copy from host is still in flight (0 = ready)

    /// <summary>The host-memory tier, or null when the worker has none.</summary>
    public HostKvTier? Host { get; }

    private readonly List<int> _scratchBlocks = []; // pool blocks of _scratchHashes while they are evicted
    private readonly List<int> _storeBlocks = [];
    private IKvBlockCopier? _copier;

    /// <summary>
    /// The backend that moves the K/V bytes between tiers (null: the engine model moves hashes only, as the roofline
    /// backend needs). Set once, before the first request.
    /// </summary>
    public IKvBlockCopier? Copier
    {
        get => _copier;
        set
        {
            _copier = value;
            if (Host is not null)
            {
                Host.Evicted = value is null ? null : value.Forget;
            }
        }
    }

    /// <summary>Host-tier blocks reloaded into HBM (on demand or by prefetch).</summary>
    public long ReloadedBlocksTotal { get; private set; }

    /// <summary>Never-cached free blocks (allocatable without evicting anything).</summary>
    public int FreeBlocks => _freeCount;

    /// <summary>True if the block is held by the host tier (it may be in HBM too).</summary>
    public bool IsInHost(ulong hash) => Host?.Contains(hash) ?? false;

    /// <summary>
    /// Leading blocks of <paramref name="hashes"/> that are in HBM or, failing that, in the host tier: the prefix a request
    /// would not recompute. <paramref name="hostBlocks"/> counts those that would be reloaded.
    /// </summary>
    public int TieredPrefixBlocks(ReadOnlySpan<ulong> hashes, out int hostBlocks)
    {
        hostBlocks = 0;
        int n = 0;
        while (n < hashes.Length)
        {
            if (!_cache.ContainsKey(hashes[n]))
            {
                if (Host is null || !Host.Contains(hashes[n]))
                {
                    break;
                }

                hostBlocks++;
            }

            n++;
        }

        return n;
    }

    /// <summary>
    /// <see cref="AcquireCachedPrefix"/> across both tiers: walks <paramref name="hashes"/> while each block is in HBM (a
    /// reference is taken) or in the host tier (a fresh HBM block is allocated, registered under the hash and counted in
    /// <paramref name="reloaded"/>: its KV is copied in before the step that uses it computes). Stops at the first block in
    /// neither tier, or when no HBM block can be found for a reload. <paramref name="readyAtTicks"/> is the latest time a
    /// prefetched block among the hits is still being copied (0 if none). Returns the blocks acquired.
    /// </summary>
    public int AcquireTieredPrefix(ReadOnlySpan<ulong> hashes, int maxBlocks, List<int> table, out int reloaded, out long readyAtTicks)
    {
        reloaded = 0;
        readyAtTicks = 0;
        int limit = Math.Min(hashes.Length, maxBlocks);
        int hits = 0;
        int runStart = -1;
        _reloadScratch.Clear();
        while (hits < limit)
        {
            ulong h = hashes[hits];
            if (_cache.TryGetValue(h, out int block))
            {
                FlushReloadRun(hashes, ref runStart);
                Reference(block);
                table.Add(block);
                readyAtTicks = Math.Max(readyAtTicks, _readyAt[block]);
            }
            else if (Host is not null && Host.Contains(h) && TryAllocate(1, table))
            {
                RegisterReloaded(table[^1], h);
                if (runStart < 0)
                {
                    runStart = hits;
                }

                reloaded++;
            }
            else
            {
                break;
            }

            hits++;
        }

        FlushReloadRun(hashes, ref runStart);
        return hits;
    }

    /// <summary>
    /// Prefetch: copies the host-resident blocks of the leading prefix of <paramref name="hashes"/> (walking through blocks
    /// already in HBM, which are refreshed in the LRU) into HBM, at most <paramref name="maxBlocks"/> of them, taking only
    /// never-cached free blocks: it displaces nothing (no cached block is demoted for it, no pin dropped, no block in use
    /// taken). The whole prefix then sits in the LRU as most recently used; they are listed in <paramref name="loaded"/> so the caller can time the copy
    /// (<see cref="MarkLoading"/>). Returns the blocks copied.
    /// </summary>
    public int Prefetch(ReadOnlySpan<ulong> hashes, int maxBlocks, List<int> loaded)
    {
        ExpirePins();
        if (Host is null || maxBlocks <= 0)
        {
            return 0;
        }

        int runStart = -1;
        _reloadScratch.Clear();
        var held = new List<int>(); // references taken for the walk, so the prefix never evicts its own blocks
        for (int i = 0; i < hashes.Length; i++)
        {
            ulong h = hashes[i];
            if (_cache.TryGetValue(h, out int block))
            {
                FlushReloadRun(hashes, ref runStart);
                Reference(block);
                held.Add(block);
                continue;
            }

            if (loaded.Count >= maxBlocks || !Host.Contains(h) || _freeCount < 1 || !TryAllocate(1, held))
            {
                break;
            }

            int b = held[^1];
            RegisterReloaded(b, h);
            if (runStart < 0)
            {
                runStart = i;
            }

            loaded.Add(b);
        }

        FlushReloadRun(hashes, ref runStart);
        Free(held); // tail first: the prefix rejoins the LRU as most recently used, its tail ahead of its head
        FlushReloadRun(hashes, ref runStart);
        return loaded.Count;
    }

    /// <summary>Marks blocks as being copied from host until <paramref name="readyAtTicks"/> (a request that uses them earlier waits).</summary>
    public void MarkLoading(List<int> blocks, long readyAtTicks)
    {
        foreach (int b in blocks)
        {
            _readyAt[b] = readyAtTicks;
        }
    }

    /// <summary>
    /// A retain hint naming the host tier: writes the leading prefix of <paramref name="hashes"/> that is cached in either tier
    /// to host memory (if not there yet), pins it there until <paramref name="ttl"/>, and demotes the HBM copies of idle
    /// blocks to the head of the LRU so they are the first to leave HBM. Replaces the session's HBM pin, if any.
    /// </summary>
    public RetainResult PinHost(string session, ReadOnlySpan<ulong> hashes, TimeSpan ttl, double value)
    {
        ArgumentNullException.ThrowIfNull(session);
        ExpirePins();
        if (_pinBySession.TryGetValue(session, out long old))
        {
            Unpin(_pins[old]);
        }

        if (Host is null || ttl <= TimeSpan.Zero)
        {
            return new RetainResult(0, 0);
        }

        int n = TieredPrefixBlocks(hashes, out _);
        _storeBlocks.Clear();
        for (int i = 0; i < n; i++)
        {
            _storeBlocks.Add(_cache.TryGetValue(hashes[i], out int b) ? b : -1); // -1: already in the host tier only
        }

        StoreToHost(hashes[..n], _storeBlocks);
        int pinned = Host.Pin(session, hashes[..n], ttl, value);
        for (int i = n - 1; i >= 0; i--)
        {
            if (_cache.TryGetValue(hashes[i], out int b) && _inLru[b])
            {
                LruRemove(b);
                LruPrepend(b);
            }
        }

        return new RetainResult(pinned, 0);
    }

    private readonly List<ulong> _reloadScratch = [];

    /// <summary>
    /// Writes <paramref name="hashes"/> (held by pool <paramref name="blocks"/>, -1 = not in HBM) to the host tier and, with a
    /// <see cref="Copier"/>, copies out the bytes of those the tier newly took (one already held is identical: blocks are
    /// immutable once hashed).
    /// </summary>
    private void StoreToHost(ReadOnlySpan<ulong> hashes, List<int> blocks)
    {
        if (Host is null)
        {
            return;
        }

        if (_copier is null)
        {
            Host.Store(hashes);
            return;
        }

        Span<bool> had = hashes.Length <= 1024 ? stackalloc bool[hashes.Length] : new bool[hashes.Length];
        for (int i = 0; i < hashes.Length; i++)
        {
            had[i] = Host.Contains(hashes[i]);
        }

        Host.Store(hashes);
        for (int i = 0; i < hashes.Length; i++)
        {
            if (!had[i] && blocks[i] >= 0 && Host.Contains(hashes[i]))
            {
                _copier.CopyOut(blocks[i], hashes[i]);
            }
        }
    }

    private void RegisterReloaded(int block, ulong hash)
    {
        _copier?.CopyIn(hash, block);
        _cache[hash] = block;
        _hash[block] = hash;
        _hasHash[block] = true;
        _reloadScratch.Add(hash);
        Host!.Touch(hash);
        ReloadedBlocksTotal++;
    }

    // A run of reloaded blocks is stored in HBM again: one stored event, parent = the block before the run.
    private void FlushReloadRun(ReadOnlySpan<ulong> hashes, ref int runStart)
    {
        if (runStart < 0 || _reloadScratch.Count == 0)
        {
            runStart = -1;
            return;
        }

        ulong? parent = runStart == 0 ? null : hashes[runStart - 1];
        _events.Append(KvEventType.Stored, [.. _reloadScratch], parent);
        _reloadScratch.Clear();
        runStart = -1;
    }

    private void LruPrepend(int block)
    {
        _prev[block] = None;
        _next[block] = _lruHead;
        if (_lruHead != None)
        {
            _prev[_lruHead] = block;
        }
        else
        {
            _lruTail = block;
        }

        _lruHead = block;
        _inLru[block] = true;
        _lruCount++;
    }
}
