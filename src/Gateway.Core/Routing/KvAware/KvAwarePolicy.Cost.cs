namespace Gateway.Core.Routing.KvAware;

/// <summary><c>kv-aware</c>'s cost terms, in seconds: queue, prefill, decode, memory pressure and the delay a placement adds to prompts waiting on a worker (Algorithm 4 of docs/policies/kv-aware.md).</summary>
public sealed partial class KvAwarePolicy
{
    /// <summary>Estimated seconds to serve a request of <paramref name="promptTokens"/> with <paramref name="cachedTokens"/> cached on <paramref name="w"/>.</summary>
    public double EstimateCost(WorkerInfo w, int promptTokens, int cachedTokens, int expectedOutputTokens)
    {
        ArgumentNullException.ThrowIfNull(w);
        return QueueSeconds(w) + PrefillSeconds(w, promptTokens, cachedTokens) + DecodeSeconds(w, promptTokens, expectedOutputTokens);
    }

    private double QueueSeconds(WorkerInfo w)
    {
        double tps = w.PrefillTokensPerSecond > 0 ? w.PrefillTokensPerSecond : 10_000;
        // Waiting now (the last report less this host's requests that finished since), less this host's own in flight.
        int foreign = Math.Max(0, w.EstimatedWaiting - w.InFlight);
        return Math.Max(0, w.PendingPrefillTokens) / tps + foreign * _options.ForeignWaitingRequestSeconds;
    }

    private double PrefillSeconds(WorkerInfo w, int promptTokens, int cachedTokens)
    {
        double tps = w.PrefillTokensPerSecond > 0 ? w.PrefillTokensPerSecond : 10_000;
        double uncached = Math.Max(0, promptTokens - cachedTokens);
        double attention = _options.AttentionTokensPerDoubling > 0 ? (cachedTokens + uncached / 2) / _options.AttentionTokensPerDoubling : 0;
        return uncached * (1 + attention) / tps;
    }

    /// <summary>
    /// Memory pressure: the blocks this request needs on <paramref name="w"/> (uncached prompt + expected output)
    /// beyond the worker's free blocks evict contexts it holds (retained or running), whose owners re-prefill them;
    /// charged x <see cref="KvAwareOptions.MemoryPressureWeight"/> at the worker's prefill rate. Not part of the
    /// request's own time to first token (it is someone else's), so only the placement cost carries it.
    /// </summary>
    private double PressureSeconds(WorkerInfo w, RouteRequest r, int cachedTokens)
    {
        if (_options.MemoryPressureWeight <= 0 || w.KvBlocksFree < 0)
        {
            return 0;
        }

        long free = w.KvBlocksFree;
        if (_options.MemoryHotWindow > TimeSpan.Zero && w.KvBlocksTotal > 0)
        {
            // Idle contexts of sessions between turns are claimed too, pinned or not (pins are inside both counts).
            // Workers whose KV events feed the precise index: only the idle contexts they still hold (an evicted one is
            // free memory, not hot memory); others have no eviction signal, so every idle context counts.
            long inUse = (long)Math.Round(Math.Clamp(w.KvUsage, 0, 1) * w.KvBlocksTotal);
            bool precise = w.PublishesKvEvents && Precise.IsTracking(w.Index);
            long idle = precise ? _idle.HeldBlocks(w.Index, r.SessionId) : _idle.IdleBlocks(w.Index, r.SessionId);
            free = Math.Min(free, w.KvBlocksTotal - inUse - idle);
        }

        int bs = Math.Max(1, r.BlockSize);
        long needTokens = Math.Max(0, r.PromptTokens - cachedTokens) + (long)Math.Max(0, r.ExpectedOutputTokens);
        long need = (needTokens + bs - 1) / bs;
        long overflow = need - Math.Max(0, free);
        if (overflow <= 0)
        {
            return 0;
        }

        double tps = w.PrefillTokensPerSecond > 0 ? w.PrefillTokensPerSecond : 10_000;
        return _options.MemoryPressureWeight * overflow * bs / tps;
    }

    /// <summary>
    /// The delay this placement adds to the requests already waiting for their first token on <paramref name="w"/>
    /// (<see cref="KvAwareOptions.QueuedPrefillDelayWeight"/>): the engine packs waiting prompts into shared prefill
    /// steps, so each of them waits for this request's prefill too. Someone else's time, so placement cost only.
    /// </summary>
    private double QueuedDelaySeconds(WorkerInfo w, double ownPrefillSeconds) =>
        _options.QueuedPrefillDelayWeight <= 0 ? 0 : _options.QueuedPrefillDelayWeight * Math.Max(0, w.PendingPrefillRequests) * ownPrefillSeconds;

    private double DecodeSeconds(WorkerInfo w, int promptTokens, int expectedOutputTokens)
    {
        double slowdown = 1 + (Math.Max(0, w.ActiveDecodeTokens) + promptTokens) / _options.DecodeContextTokensPerDoubling;
        return Math.Max(0, expectedOutputTokens) * w.DecodeStepSeconds * slowdown;
    }

    private int CapacityOf(WorkerInfo w)
    {
        double blocks = w.KvBlocksTotal > 0 ? w.KvBlocksTotal * _options.CapacityFactor : _options.DefaultWorkerCapacityBlocks;
        return (int)Math.Clamp(blocks, 1, int.MaxValue);
    }

    private static int CachedTokens(int matchedBlocks, RouteRequest r) => (int)Math.Min((long)matchedBlocks * r.BlockSize, r.PromptTokens);
}
