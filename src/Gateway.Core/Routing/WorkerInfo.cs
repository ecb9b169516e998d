namespace Gateway.Core.Routing;

/// <summary>
/// A worker as the router host (gateway or simulator) sees it: the load this host charged at dispatch (no lag
/// behind metric polls) plus the worker's last self-report. Counters are updated with Interlocked so a live
/// gateway can read them without a lock; a policy reads a consistent-enough view, never a torn value.
/// </summary>
public sealed class WorkerInfo
{
    private int _inFlight;
    private long _pendingPrefillTokens;
    private long _activeDecodeTokens;
    private int _pendingPrefillRequests;

    /// <summary>Creates a worker record.</summary>
    public WorkerInfo(string id, int index)
    {
        Id = id;
        Index = index;
    }

    /// <summary>Stable worker id (URL or pod name).</summary>
    public string Id { get; }

    /// <summary>Position in the host's worker list.</summary>
    public int Index { get; }

    /// <summary>False while the worker fails health checks or its circuit is open.</summary>
    public bool Healthy { get; set; } = true;

    /// <summary>True while the worker is draining: it gets no new requests.</summary>
    public bool Draining { get; set; }

    /// <summary>Requests dispatched here by this host and not completed.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Uncached prompt tokens dispatched here whose prefill has not finished (first token not seen).</summary>
    public long PendingPrefillTokens => Volatile.Read(ref _pendingPrefillTokens);

    /// <summary>Context tokens of requests here that are decoding.</summary>
    public long ActiveDecodeTokens => Volatile.Read(ref _activeDecodeTokens);

    /// <summary>Requests dispatched here that have not reached their first token (their prompt is waiting or being prefilled).</summary>
    public int PendingPrefillRequests => Volatile.Read(ref _pendingPrefillRequests);

    /// <summary>Worker-reported waiting requests (last poll).</summary>
    public int ReportedWaiting { get; set; }

    /// <summary>This host's <see cref="InFlight"/> when <see cref="ReportedWaiting"/> was last read from the worker.</summary>
    public int InFlightAtReport { get; set; }

    /// <summary>
    /// Waiting requests now, estimated from the last report: every request this host saw finish since the report
    /// left the worker's queue too, so a stale "saturated" report cannot hold the gateway queue until the next poll.
    /// </summary>
    public int EstimatedWaiting => Math.Max(0, ReportedWaiting - Math.Max(0, InFlightAtReport - InFlight));

    /// <summary>Worker-reported running requests (last poll).</summary>
    public int ReportedRunning { get; set; }

    /// <summary>Worker-reported fraction of KV blocks in use (last poll), 0..1.</summary>
    public double KvUsage { get; set; }

    /// <summary>Worker-reported KV capacity in blocks (0 when unknown).</summary>
    public int KvBlocksTotal { get; set; }

    /// <summary>
    /// Worker-reported KV blocks a new request can take without evicting anything held (free plus unreferenced,
    /// unpinned cached blocks, i.e. total − blocks of live sequences − pinned idle blocks); −1 when unknown. A router
    /// reads it as where the pool is already claimed by running requests and by retention pins.
    /// </summary>
    public int KvBlocksFree { get; set; } = -1;

    /// <summary>
    /// Worker-reported eviction age of its prefix cache in seconds (<c>kv_eviction_age_s</c>, Che's characteristic time of
    /// its LRU): NaN when unknown, +∞ when it has evicted nothing. Read by the predictive retention policy's
    /// <c>EvictionAge</c> pricing.
    /// </summary>
    public double KvEvictionAgeSeconds { get; set; } = double.NaN;

    /// <summary>
    /// Worker-reported blocks recomputed because retention pins pushed them out (<c>pin_cost_blocks_total</c>) and blocks hit
    /// only because a pin kept them (<c>pin_saved_blocks_total</c>), cumulative; −1 when not reported. Read by the predictive
    /// retention policy's guard.
    /// </summary>
    public (long Cost, long Saved) PinBlocksTotal { get; set; } = (-1, -1);

    /// <summary>
    /// Seconds to reload one token's KV from the worker's host tier (its <c>host_reload_seconds_per_token</c>; 0 = no host
    /// tier or unknown). <c>kv-aware</c> charges a host hit this instead of a recompute.
    /// </summary>
    public double HostReloadSecondsPerToken { get; set; }

    /// <summary>
    /// Worker-reported size of its host-memory KV tier in blocks (its <c>host_kv_blocks_total</c>; 0 = none or unknown).
    /// The agent layer's predictive policy places idle contexts by it (no HBM pin; a prefetch before the predicted return).
    /// </summary>
    public int HostKvBlocksTotal { get; set; }

    /// <summary>Prefill throughput of this worker in tokens/s (from its published profile or measured).</summary>
    public double PrefillTokensPerSecond { get; set; } = 10_000;

    /// <summary>Time of one decode step at typical batch, in seconds (from its profile or measured).</summary>
    public double DecodeStepSeconds { get; set; } = 0.02;

    /// <summary>True when the worker publishes KV events (precise index usable).</summary>
    public bool PublishesKvEvents { get; set; }

    /// <summary>Eligible for new requests.</summary>
    public bool Eligible => Healthy && !Draining;

    /// <summary>Charges a dispatched request: in-flight +1, its uncached prompt tokens to pending prefill.</summary>
    public void OnDispatched(int uncachedPromptTokens)
    {
        Interlocked.Increment(ref _inFlight);
        Interlocked.Increment(ref _pendingPrefillRequests);
        Interlocked.Add(ref _pendingPrefillTokens, uncachedPromptTokens);
    }

    /// <summary>The request's prefill finished (first token): its prefill charge moves to decode.</summary>
    public void OnFirstToken(int uncachedPromptTokens, int contextTokens)
    {
        Interlocked.Decrement(ref _pendingPrefillRequests);
        Interlocked.Add(ref _pendingPrefillTokens, -uncachedPromptTokens);
        Interlocked.Add(ref _activeDecodeTokens, contextTokens);
    }

    /// <summary>The request ended (completed, failed or cancelled); <paramref name="reachedDecode"/> says whether <see cref="OnFirstToken"/> ran.</summary>
    public void OnCompleted(int uncachedPromptTokens, int contextTokens, bool reachedDecode)
    {
        Interlocked.Decrement(ref _inFlight);
        if (reachedDecode)
        {
            Interlocked.Add(ref _activeDecodeTokens, -contextTokens);
        }
        else
        {
            Interlocked.Decrement(ref _pendingPrefillRequests);
            Interlocked.Add(ref _pendingPrefillTokens, -uncachedPromptTokens);
        }
    }
}
