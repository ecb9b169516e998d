using Worker.Contract;

namespace Worker.Engine;

/// <summary>
/// The engine seen from outside: the /worker/state snapshot, retention pins in HBM or the host tier, their release, and
/// prefix-cache queries.
/// </summary>
public sealed partial class LlmEngine
{
    /// <summary>Snapshot for /worker/state.</summary>
    public EngineState GetState()
    {
        _blocks.ExpirePins();
        long runningContext = 0;
        foreach (var s in _running)
        {
            runningContext += s.Computed;
        }

        var profile = Options.Profile;
        return new EngineState
        {
            Model = profile.ServedModel,
            Profile = profile.Name,
            BlockSize = _blockSize,
            KvBlocksTotal = _blocks.TotalBlocks,
            KvBlocksUsed = _blocks.UsedBlocks,
            KvBlocksPinned = _blocks.PinnedBlocks,
            KvBlocksCached = _blocks.CachedBlocks,
            KvBlocksFree = _blocks.AvailableBlocks,
            KvEvictionAgeSeconds = _blocks.EvictionAgeSeconds,
            WaitingRequests = _waiting.Count,
            RunningRequests = _running.Count,
            WaitingTokens = _waitingTokens,
            PrefixCacheQueryTokens = _queryTokens,
            PrefixCacheHitTokens = _hitTokens,
            PrefixCacheHostHitTokens = _hostHitTokens,
            HostKvBlocksTotal = _blocks.Host?.CapacityBlocks ?? 0,
            HostKvBlocksCached = _blocks.Host?.CachedBlocks ?? 0,
            HostKvBlocksPinned = _blocks.Host?.PinnedBlocks ?? 0,
            HostKvStoresTotal = _blocks.Host?.StoresTotal ?? 0,
            HostKvEvictionsTotal = _blocks.Host?.EvictionsTotal ?? 0,
            HostKvReloadedBlocksTotal = _blocks.ReloadedBlocksTotal,
            HostToDeviceBytesPerSecond = profile.HostToDeviceBytesPerSecond,
            KvBytesPerToken = profile.KvBytesPerTokenPerGpu,
            PinsDroppedTotal = _blocks.PinsDroppedTotal,
            PinsExpiredTotal = _blocks.PinsExpiredTotal,
            PinCostBlocksTotal = _blocks.PinCostBlocksTotal,
            PinSavedBlocksTotal = _blocks.PinSavedBlocksTotal,
            PinsActive = _blocks.ActivePins,
            PreemptionsTotal = _preemptions,
            PromptTokensTotal = _promptTokens,
            GeneratedTokensTotal = _generatedTokens,
            StepsTotal = _steps,
            BusySeconds = _busySeconds,
            PrefillTokensPerSecond = profile.PrefillTokensPerSecond,
            DecodeStepSeconds = profile.DecodeStepSeconds(Math.Max(1, _running.Count), runningContext),
            KvEventSeq = KvEvents.LastSeq,
        };
    }

    /// <summary>
    /// Pins the cached prefix of <see cref="RetainRequest.BlockHashes"/>, or of the session's most recent request when only
    /// <see cref="RetainRequest.SessionId"/> is given, for <see cref="RetainRequest.TtlMs"/>.
    /// </summary>
    public RetainResult Retain(RetainRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        if (r.TtlMs <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(r), "ttl_ms must be positive");
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

        if (hashes is null)
        {
            return new RetainResult(0, 0);
        }

        if (r.Tier == KvPinTier.Host)
        {
            string key = r.SessionId ?? (hashes.Length > 0 ? "#" + hashes[^1].ToString("x16", System.Globalization.CultureInfo.InvariantCulture) : "#");
            return _blocks.PinHost(key, hashes, TimeSpan.FromMilliseconds(r.TtlMs), r.Value);
        }

        return _blocks.Pin(r.SessionId, hashes, TimeSpan.FromMilliseconds(r.TtlMs), r.Priority, r.Value);
    }

    /// <summary>Releases a session's pin, or the given hashes from every pin. Returns the blocks released.</summary>
    public int Release(ReleaseRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        int released = 0;
        if (r.SessionId is not null)
        {
            released += _blocks.ReleaseSession(r.SessionId);
        }

        if (r.BlockHashes is { Count: > 0 } given)
        {
            released += _blocks.ReleaseHashes([.. given]);
        }

        return released;
    }

    /// <summary>How many leading blocks of <paramref name="hashes"/> are cached in HBM now.</summary>
    public int CachedPrefixBlocks(ReadOnlySpan<ulong> hashes) => _blocks.CachedPrefixBlocks(hashes);

    /// <summary>How many leading blocks of <paramref name="hashes"/> are in HBM or the host tier; <paramref name="hostBlocks"/> of them only in host.</summary>
    public int TieredPrefixBlocks(ReadOnlySpan<ulong> hashes, out int hostBlocks) => _blocks.TieredPrefixBlocks(hashes, out hostBlocks);

    /// <summary>Clears the prefix cache and every pin (one cleared event).</summary>
    public void ClearPrefixCache() => _blocks.Clear();
}
