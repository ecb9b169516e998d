using Gateway.Core.Routing;

namespace Gateway.Core.Scheduling;

/// <summary>
/// Capacity held back for tenants within their share: the last <see cref="Reserve"/> free dispatch slots of the fleet go
/// only to requests of tenants that are not over their share, i.e. hold fewer than <see cref="OverShareFactor"/> x their
/// weighted share of the requests in flight (<see cref="IRequestScheduler.DequeueWithinShare(double)"/>); a tenant over
/// its share waits for unreserved capacity. The idea of reserved headroom for high-priority work (Llumnix's headroom for
/// priority requests, Sun et al. OSDI'24; vLLM's priority scheduling) applied to fair shares: under overload a tenant
/// sending 10x its share otherwise fills every slot the moment it frees, and a within-share tenant's request waits for a
/// worker to finish a long prefill first (docs/policies/hfair.md, noisy neighbour). The dispatch step shared by the
/// gateway (<c>FairDispatcher</c>) and the simulator, wrapping <see cref="LocalityPick"/>.
/// <para>Knobs: <see cref="Reserve"/> (slots; 0 = off) and <see cref="OverShareFactor"/> (1.5: tenants of equal weight
/// whose in-flight counts merely fluctuate around their share are all eligible, so balanced load keeps its fair order and
/// locality). Cost: up to <see cref="Reserve"/> slots stay idle while only over-share tenants are queued; none while one
/// tenant is alone (it holds its whole share) or nothing is in flight.</para>
/// </summary>
public sealed class ReservedCapacity
{
    /// <summary>Default <see cref="Reserve"/>: one slot (measured in docs/policies/hfair.md).</summary>
    public const int DefaultReserve = 1;

    /// <summary>Default <see cref="OverShareFactor"/>: 1.5.</summary>
    public const double DefaultOverShareFactor = 1.5;

    /// <summary>Creates the rule; <paramref name="reserve"/> below 0 counts as 0 (off); <paramref name="overShareFactor"/> must be positive.</summary>
    public ReservedCapacity(int reserve = DefaultReserve, double overShareFactor = DefaultOverShareFactor)
    {
        if (!(overShareFactor > 0) || double.IsInfinity(overShareFactor))
        {
            throw new ArgumentOutOfRangeException(nameof(overShareFactor), overShareFactor, "must be a positive number");
        }

        Reserve = Math.Max(0, reserve);
        OverShareFactor = overShareFactor;
    }

    /// <summary>Free slots held back for tenants not over their share.</summary>
    public int Reserve { get; }

    /// <summary>A tenant holding at least this many times its weighted share of the in-flight requests is over its share.</summary>
    public double OverShareFactor { get; }

    /// <summary>Dispatches that took a reserved slot.</summary>
    public long ReservedPicks { get; private set; }

    /// <summary>Times a reserved slot was left free because only over-share tenants had requests queued.</summary>
    public long HeldBack { get; private set; }

    /// <summary>Whether a dispatch with <paramref name="free"/> slots free (this one included) takes a reserved slot.</summary>
    public bool IsReserved(int free) => free <= Reserve;

    /// <summary>
    /// Next request for a dispatch while <paramref name="free"/> slots are free (this one included): the
    /// <paramref name="locality"/> pick for <paramref name="worker"/> (plain fair order without one) while unreserved slots
    /// remain, else the same pick among tenants not over their share, or null (the slot stays free for them).
    /// </summary>
    public QueuedRequest? Next(IRequestScheduler scheduler, int free, LocalityPick? locality = null, WorkerInfo? worker = null)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        bool reserved = IsReserved(free);
        QueuedRequest? r;
        if (locality is not null && worker is not null)
        {
            r = locality.Next(scheduler, worker, reserved ? OverShareFactor : 0);
        }
        else
        {
            r = reserved ? scheduler.DequeueWithinShare(OverShareFactor) : scheduler.Dequeue();
        }

        if (reserved)
        {
            if (r is null)
            {
                HeldBack++;
            }
            else
            {
                ReservedPicks++;
            }
        }

        return r;
    }
}
