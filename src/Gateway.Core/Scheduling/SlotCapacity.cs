using Gateway.Core.Routing;

namespace Gateway.Core.Scheduling;

/// <summary>
/// The gateway's capacity rule, per worker: an eligible worker offers <see cref="MaxInFlightPerWorker"/> dispatch slots,
/// or, while saturated, only the slots it already uses (at least one). Saturated: its last report shows more than
/// <see cref="MaxReportedWaiting"/> waiting requests less those seen finishing since (<see cref="WorkerInfo.EstimatedWaiting"/>),
/// or KV use at or above <see cref="KvHighWatermark"/>, or (pending-prefill rule, <see cref="MaxPendingPrefillTokens"/>
/// above 0) prompt tokens sent and not yet prefilled at or above the limit, or a released request still in transit to
/// some worker. The fleet's free capacity is the sum of the slots less the requests released and not finished. Pure: reads
/// the live <see cref="WorkerInfo"/> records only.
/// </summary>
public sealed record SlotCapacity
{
    /// <summary>Slots of an unsaturated worker.</summary>
    public int MaxInFlightPerWorker { get; init; } = 32;

    /// <summary>A worker with more waiting requests than this (estimated since its last report) is saturated.</summary>
    public int MaxReportedWaiting { get; init; } = 4;

    /// <summary>A worker whose KV use reaches this fraction is saturated.</summary>
    public double KvHighWatermark { get; init; } = 0.97;

    /// <summary>Pending-prefill rule (0: off): a worker with this many prompt tokens sent and not yet prefilled is saturated.</summary>
    public long MaxPendingPrefillTokens { get; init; }

    /// <summary>
    /// Whether a released request is in transit (released, not yet on any worker): <paramref name="released"/> in
    /// flight at the dispatcher against <paramref name="onWorkers"/> in flight on the workers. Only the pending-prefill
    /// rule looks at it: until the prompt lands, every worker counts as saturated, so prompts are released one at a time.
    /// </summary>
    public bool InTransit(int released, int onWorkers) => MaxPendingPrefillTokens > 0 && released > onWorkers;

    /// <summary>Whether <paramref name="worker"/> reads saturated (see the type's summary).</summary>
    public bool IsSaturated(WorkerInfo worker, bool inTransit)
    {
        ArgumentNullException.ThrowIfNull(worker);
        return worker.EstimatedWaiting > MaxReportedWaiting || worker.KvUsage >= KvHighWatermark
            || (MaxPendingPrefillTokens > 0 && (inTransit || worker.PendingPrefillTokens >= MaxPendingPrefillTokens));
    }

    /// <summary>
    /// Slots <paramref name="worker"/> offers: <see cref="MaxInFlightPerWorker"/>, or while saturated the ones it already
    /// uses (at least one, so a worker filled by others never stalls this gateway's requests until the next report).
    /// </summary>
    public int SlotsOf(WorkerInfo worker, bool inTransit) =>
        IsSaturated(worker, inTransit) ? Math.Min(MaxInFlightPerWorker, Math.Max(1, worker.InFlight)) : MaxInFlightPerWorker;
}
