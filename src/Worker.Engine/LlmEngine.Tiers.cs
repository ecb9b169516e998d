namespace Worker.Engine;

/// <summary>
/// The engine's host tier: reload timing and prefetch. Reloads share one host-to-device link per worker: a copy starts when
/// the link is free (prefetches queue on it), lasts <see cref="ModelProfile.HostLoadSeconds"/>, and a step that reloads
/// overlaps the copy with its compute layer by layer (<see cref="ModelProfile.TieredStepSeconds"/>). Demotion (HBM → host)
/// is not charged: it runs on the other direction of the link, on its own copy stream, as HiCache's write-back does.
/// </summary>
public sealed partial class LlmEngine
{
    /// <summary>The step's duration once the reloads of the sequences it admitted and the prefetches it waits on are counted.</summary>
    private TimeSpan WithReloads(TimeSpan compute)
    {
        var profile = Options.Profile;
        long now = Time.GetUtcNow().UtcTicks;
        double load = profile.HostLoadSeconds(_stepReloadTokens);
        double linkWait = _stepReloadTokens > 0 ? Math.Max(0, _linkFreeAt - now) / (double)TimeSpan.TicksPerSecond : 0;
        double prefetchWait = Math.Max(0, _stepReadyAt - now) / (double)TimeSpan.TicksPerSecond;
        if (_stepReloadTokens > 0)
        {
            _linkFreeAt = now + (long)Math.Round((linkWait + load) * TimeSpan.TicksPerSecond);
        }

        double seconds = profile.TieredStepSeconds(compute.TotalSeconds, load, Math.Max(linkWait, prefetchWait));
        return TimeSpan.FromTicks((long)Math.Round(seconds * TimeSpan.TicksPerSecond));
    }

    /// <summary>
    /// Copies the host-resident part of a session's prefix (its most recent request's blocks when only
    /// <see cref="PrefetchRequest.SessionId"/> is given) into HBM ahead of its next request. Budgeted so that it never
    /// takes memory running or queued work will need and never displaces another context: it uses only never-cached free
    /// blocks beyond what the running and waiting requests still have to allocate to finish (no eviction, no pin dropped). The copy is queued on the host-to-device
    /// link; a request that uses the blocks before it is done waits for the rest. With <see cref="PrefetchRequest.TtlMs"/>
    /// the prefix is then pinned in HBM (as a retain naming the hbm tier).
    /// </summary>
    public PrefetchResult Prefetch(PrefetchRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.MaxBlocks < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(r), "max_blocks must be >= 0");
        }

        ulong[]? hashes = null;
        if (r.BlockHashes is { Count: > 0 } given)
        {
            hashes = [.. given];
        }
        else if (r.SessionId is not null)
        {
            _sessions.TryGetValue(r.SessionId, out hashes);
        }

        _blocks.ExpirePins();
        if (hashes is null || _blocks.Host is null)
        {
            return new PrefetchResult(0, hashes is null ? 0 : _blocks.CachedPrefixBlocks(hashes), 0, 0);
        }

        int budget = Math.Max(0, _blocks.FreeBlocks - BlocksStillNeeded());
        int max = r.MaxBlocks > 0 ? Math.Min(r.MaxBlocks, budget) : budget;
        var loaded = new List<int>();
        _blocks.Prefetch(hashes, max, loaded);
        long now = Time.GetUtcNow().UtcTicks;
        double ready = 0;
        if (loaded.Count > 0)
        {
            long start = Math.Max(now, _linkFreeAt);
            _linkFreeAt = start + (long)Math.Round(Options.Profile.HostLoadSeconds((long)loaded.Count * _blockSize) * TimeSpan.TicksPerSecond);
            _blocks.MarkLoading(loaded, _linkFreeAt);
            ready = (_linkFreeAt - now) / (double)TimeSpan.TicksPerSecond;
        }

        int resident = _blocks.CachedPrefixBlocks(hashes);
        if (r.TtlMs > 0 && resident > 0)
        {
            _blocks.Pin(r.SessionId, hashes.AsSpan(0, resident), TimeSpan.FromMilliseconds(r.TtlMs), r.Priority, r.Value);
        }

        return new PrefetchResult(loaded.Count, resident - loaded.Count, ready, budget);
    }

    /// <summary>Blocks the running and waiting requests still have to allocate to reach their last token (waiting ones: beyond their cached prefix).</summary>
    private int BlocksStillNeeded()
    {
        long need = 0;
        foreach (var s in _running)
        {
            need += Math.Max(0, BlocksFor((long)s.Request.PromptTokens + s.Request.OutputTokens - 1) - s.BlockTable.Count);
        }

        foreach (var s in _waiting)
        {
            // Its uncached part: what admission will allocate (the cached prefix is already in HBM).
            int cached = s.BlockTable.Count > 0 ? s.BlockTable.Count : _blocks.CachedPrefixBlocks(s.Request.BlockHashes);
            need += Math.Max(0, BlocksFor((long)s.Request.PromptTokens + s.Request.OutputTokens - 1) - cached);
        }

        return (int)Math.Min(int.MaxValue, need);
    }
}
