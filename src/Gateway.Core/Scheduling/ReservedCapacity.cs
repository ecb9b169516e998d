using Gateway.Core.Routing;

namespace Gateway.Core.Scheduling;

/// <summary>
/// Capacity reserved for tenants within their share, work-conserving: the last <see cref="Reserve"/> free dispatch slots of
/// the fleet go first to requests of tenants that are not over their share, i.e. hold fewer than
/// <see cref="OverShareFactor"/> x their weighted share of the requests in flight
/// (<see cref="IRequestScheduler.DequeueWithinShare(double)"/>). When no such request is queued the slot is <b>lent</b> to
/// the usual pick (an over-share tenant) instead of staying idle; when a within-share request arrives while slots are lent
/// and none is free, it <b>reclaims</b> one (<see cref="Reclaim"/>): it is dispatched at once, beyond the capacity rule, and
/// tagged urgent (<see cref="IsUrgent"/>, the worker's priority hint), so the engine admits it, gives its prefill the step
/// budget first and preempts lower-priority sequences by recompute when KV is short. Otherwise the next free slot takes it
/// (reserved slots serve within-share tenants first). The idea of reserved headroom for high-priority work (Llumnix,
/// Sun et al. OSDI'24; vLLM's priority scheduling) applied to fair shares. The dispatch step shared by the gateway
/// (<c>FairDispatcher</c>) and the simulator, wrapping <see cref="LocalityPick"/>.
/// <para>Knobs: <see cref="Reserve"/> (slots; 0 = off) and <see cref="OverShareFactor"/> (1.5: tenants of equal weight
/// whose in-flight counts merely fluctuate around their share are all within it, so balanced load keeps its fair order and
/// locality). Without contention nobody is over its share and nothing is lent or reclaimed: the reserve costs nothing.</para>
/// Not thread-safe: the host serialises calls (as for the scheduler).
/// </summary>
public sealed class ReservedCapacity
{
    /// <summary>Default <see cref="Reserve"/>: one slot (measured in docs/policies/hfair.md).</summary>
    public const int DefaultReserve = 1;

    /// <summary>Default engine priority of a request dispatched within its share (<see cref="IsUrgent"/>); resumed agent turns use 1 too.</summary>
    public const int DefaultUnderSharePriority = 1;

    /// <summary>Default <see cref="OverShareFactor"/>: 1.5.</summary>
    public const double DefaultOverShareFactor = 1.5;

    private readonly LinkedList<QueuedRequest> _borrowers = new();
    private readonly LinkedList<QueuedRequest> _overdraft = new();

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

    /// <summary>Free slots reserved for tenants not over their share (lent to others while none of them waits).</summary>
    public int Reserve { get; }

    /// <summary>A tenant holding at least this many times its weighted share of the in-flight requests is over its share.</summary>
    public double OverShareFactor { get; }

    /// <summary>Dispatches of a within-share request into a reserved slot.</summary>
    public long ReservedPicks { get; private set; }

    /// <summary>Dispatches that borrowed a reserved slot because no within-share request was queued.</summary>
    public long Lent { get; private set; }

    /// <summary>Within-share requests dispatched beyond the capacity rule by taking back a lent slot (<see cref="Reclaim"/>).</summary>
    public long Reclaimed { get; private set; }

    /// <summary>Borrowers in flight: requests holding a lent slot that has not been reclaimed.</summary>
    public int LentOut => _borrowers.Count;

    /// <summary>Whether a dispatch with <paramref name="free"/> slots free (this one included) takes a reserved slot.</summary>
    public bool IsReserved(int free) => free <= Reserve;

    /// <summary>
    /// Whether <paramref name="request"/>, just dispatched by <paramref name="scheduler"/>, was within its share while a
    /// neighbour was over its share (the worker's urgency hint). A tenant alone (a flood with nobody else queued or in
    /// flight) is within its share but gets no hint, so its requests never rank with the quiet ones that arrive while they
    /// still run; and among tenants that are all within their shares (no contention) nobody gets it, so the engine keeps
    /// their arrival order, as under <c>fcfs</c>. Only policies with a notion of share (<c>hfair</c>) mark requests; for
    /// the others this is false.
    /// </summary>
    public bool IsUrgent(IRequestScheduler scheduler, QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return scheduler is HierarchicalFairScheduler && request.ShareAtDispatch < OverShareFactor && request.ContendedAtDispatch
            && !request.BackloggedAtDispatch && request.NeighbourShareAtDispatch >= OverShareFactor;
    }

    /// <summary>
    /// Worker priority of a dispatched request: <paramref name="basePriority"/> (a resumed agent turn's, else 0) plus
    /// <paramref name="underSharePriority"/> when it was <paramref name="urgent"/> (within its share), at most 1000 (the
    /// worker protocol's range). Additive, so a resumed turn still ranks above its tenant's fresh work.
    /// </summary>
    public static int EnginePriority(int basePriority, bool urgent, int underSharePriority) =>
        Math.Min(MaxEnginePriority, basePriority + (urgent ? Math.Max(0, underSharePriority) : 0));

    /// <summary>Largest priority the worker protocol accepts (<c>x-request-priority</c>).</summary>
    public const int MaxEnginePriority = 1000;

    /// <summary>
    /// Next request for a dispatch while <paramref name="free"/> slots are free (this one included): the
    /// <paramref name="locality"/> pick for <paramref name="worker"/> (plain fair order without one) while unreserved slots
    /// remain; in a reserved slot the same pick among tenants not over their share, else (none queued) the usual pick,
    /// which borrows the slot. Null only when the queue is empty.
    /// </summary>
    public QueuedRequest? Next(IRequestScheduler scheduler, int free, LocalityPick? locality = null, WorkerInfo? worker = null)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        if (!IsReserved(free))
        {
            return Pick(scheduler, 0, locality, worker);
        }

        var r = Pick(scheduler, OverShareFactor, locality, worker);
        if (r is not null && (scheduler is not HierarchicalFairScheduler || (r.ContendedAtDispatch && !r.BackloggedAtDispatch)))
        {
            ReservedPicks++;
            return r;
        }

        if (r is not null)
        {
            // A tenant alone, or one that keeps a backlog, is within its share but is not what the reserve is for: the slot
            // is lent, so a quiet tenant that arrives beside it can take it back instead of waiting for the engine to admit
            // it (a flood starting next to quiet tenants holds few requests in flight for a while but queues many).
            Lent++;
            r.ReserveNode = _borrowers.AddLast(r);
            return r;
        }

        r = Pick(scheduler, 0, locality, worker);
        if (r is not null)
        {
            Lent++;
            r.ReserveNode = _borrowers.AddLast(r);
        }

        return r;
    }

    /// <summary>
    /// While no slot is free: a queued within-share request takes back a slot lent to an over-share one (the borrower keeps
    /// running; the engine serves the urgent request first), or null when nothing is lent or no within-share request is
    /// queued. <paramref name="borrower"/>: the request whose lent slot was taken back (its worker is the natural target).
    /// </summary>
    public QueuedRequest? Reclaim(IRequestScheduler scheduler, out QueuedRequest? borrower)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        borrower = null;
        if (_borrowers.First is not { } oldest || scheduler.Count == 0)
        {
            return null;
        }

        // hfair: only a request the hint will mark (a neighbour over its share) takes a slot back; among tenants that are all
        // within their shares, releasing it beyond capacity would only batch its prefill with its peers' in the engine.
        var r = scheduler is HierarchicalFairScheduler hfair
            ? hfair.DequeueUrgent(OverShareFactor, OverShareFactor)
            : scheduler.DequeueWithinShare(OverShareFactor);
        if (r is null)
        {
            return null;
        }

        borrower = oldest.Value;
        Release(borrower);
        Reclaimed++;
        return r;
    }

    /// <summary>Urgent requests released beyond the capacity rule by <see cref="Overdraw"/>.</summary>
    public long Overdrawn { get; private set; }

    /// <summary>Overdrawn requests in flight whose slot the capacity rule has not yet given back (at most <see cref="Reserve"/>).</summary>
    public int Overdraft => _overdraft.Count;

    /// <summary>
    /// Capacity taken over when no slot is free and none is lent (<see cref="Reclaim"/> has nothing to take back): early
    /// in an overload, while the flood still holds few requests, and on a gateway replica whose slot limit the other
    /// replicas' claims shrink. A queued request of a tenant <em>under</em> its share (factor 1, not
    /// <see cref="OverShareFactor"/>) while another tenant of this gateway has work (one that <see cref="IsUrgent"/> will
    /// mark) is released at
    /// once, beyond capacity, at most <see cref="Reserve"/> such releases outstanding (<see cref="Overdraft"/>); the
    /// worker serves it first. The capacity rule counts the overdrawn request, so the next free slot does not go to the
    /// work that held them, and the overdraft is repaid (<see cref="Repay"/>) once capacity is no longer exceeded, or
    /// when the request finishes. Null when nothing may be overdrawn or no such request waits.
    /// </summary>
    public QueuedRequest? Overdraw(IRequestScheduler scheduler)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        if (_overdraft.Count >= Reserve || scheduler is not HierarchicalFairScheduler hfair || hfair.Count == 0)
        {
            return null;
        }

        var r = hfair.DequeueUrgent(1.0, OverShareFactor);
        if (r is not null)
        {
            Overdrawn++;
            r.OverdraftNode = _overdraft.AddLast(r);
        }

        return r;
    }

    /// <summary>
    /// The capacity rule shows <paramref name="free"/> slots (negative: in use beyond the limit): overdrafts beyond
    /// <c>max(0, -free)</c> are repaid, oldest first (this replica is back within its limit by that much).
    /// </summary>
    public void Repay(int free)
    {
        while (_overdraft.Count > Math.Max(0, -free) && _overdraft.First is { } oldest)
        {
            _overdraft.Remove(oldest);
            oldest.Value.OverdraftNode = null;
        }
    }

    /// <summary>A dispatched request finished (or was cancelled or failed): a slot it borrowed is no longer lent.</summary>
    public void Complete(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        Release(request);
        if (request.OverdraftNode is { } node)
        {
            _overdraft.Remove(node);
            request.OverdraftNode = null;
        }
    }

    private void Release(QueuedRequest request)
    {
        if (request.ReserveNode is { } node)
        {
            _borrowers.Remove(node);
            request.ReserveNode = null;
        }
    }

    private static QueuedRequest? Pick(IRequestScheduler scheduler, double withinShareFactor, LocalityPick? locality, WorkerInfo? worker)
    {
        if (locality is not null && worker is not null)
        {
            return locality.Next(scheduler, worker, withinShareFactor);
        }

        return withinShareFactor > 0 ? scheduler.DequeueWithinShare(withinShareFactor) : scheduler.Dequeue();
    }
}
