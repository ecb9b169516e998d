using Gateway.Core.Routing;

namespace Gateway.Core.Scheduling;

/// <summary>How much the fleet can take now, and for which worker the next request is picked.</summary>
/// <param name="Free">Dispatch slots free now, the next release included (0 or less: none).</param>
/// <param name="Worker">The worker the next pick is made for (<see cref="LocalityPick"/>), or null for plain fair order.</param>
public readonly record struct DispatchCapacity(int Free, WorkerInfo? Worker);

/// <summary>
/// The side of a dispatch that differs between hosts: the capacity rule (how many requests the fleet takes now) and
/// what happens to a released request (the gateway wakes the waiting HTTP request, which routes and forwards it; the
/// simulator routes it and submits it to an engine at once).
/// </summary>
public interface IDispatchTarget
{
    /// <summary>
    /// Capacity before the next pick. <paramref name="first"/>: the first pick of this pump; afterwards it is asked
    /// again after every release, so a rule that reads live worker state sees the release it just made.
    /// </summary>
    DispatchCapacity Capacity(bool first);

    /// <summary>
    /// Hands on a released request. <paramref name="reclaimed"/>: released with no slot free, by taking back a reserved
    /// slot lent to an over-share tenant (<see cref="ReservedCapacity.Reclaim"/>); it goes out urgent.
    /// </summary>
    void Release(QueuedRequest request, bool reclaimed);
}

/// <summary>The queue a <see cref="DispatchDriver"/> releases from: the gateway's admission queue, or a bare scheduler.</summary>
public interface IDispatchQueue
{
    /// <summary>Requests waiting.</summary>
    int Count { get; }

    /// <summary>Next request while <paramref name="free"/> slots are free (<see cref="ReservedCapacity.Next"/>).</summary>
    QueuedRequest? DequeueFor(ReservedCapacity reserve, int free, LocalityPick? pick, WorkerInfo? worker);

    /// <summary>With no slot free: a within-share request taking back a lent slot (<see cref="ReservedCapacity.Reclaim"/>), or null.</summary>
    QueuedRequest? ReclaimFor(ReservedCapacity reserve);

    /// <summary>With no slot free and nothing lent: an under-share request released beyond capacity (<see cref="ReservedCapacity.Overdraw"/>), or null.</summary>
    QueuedRequest? OverdrawFor(ReservedCapacity reserve);
}

/// <summary>
/// The dispatch loop shared by the gateway (<c>FairDispatcher</c>) and the simulator: while requests wait and the
/// target reports free capacity, take the next one in fair order (the last <see cref="ReservedCapacity.Reserve"/>
/// slots first for tenants not over their share; the <see cref="LocalityPick"/> for the worker the capacity names)
/// and release it; with no slot free, within-share requests take back slots lent to over-share ones, one each. The
/// capacity rule and what a release does belong to the <see cref="IDispatchTarget"/>. Not thread-safe: the host
/// serialises calls (as for the scheduler).
/// </summary>
public sealed class DispatchDriver
{
    private readonly IDispatchQueue _queue;
    private readonly ReservedCapacity _reserve;
    private readonly LocalityPick? _locality;
    private readonly bool _overdraw;

    /// <summary>
    /// Creates the driver over <paramref name="queue"/> with the reserved-slot rule and an optional locality pick.
    /// <paramref name="overdraw"/>: with no slot free and no lent slot to take back, a request of a tenant under its share
    /// beside a backlogged neighbour over its share is released beyond capacity (<see cref="ReservedCapacity.Overdraw"/>).
    /// </summary>
    public DispatchDriver(IDispatchQueue queue, ReservedCapacity reserve, LocalityPick? locality = null, bool overdraw = false)
    {
        _overdraw = overdraw;
        _queue = queue ?? throw new ArgumentNullException(nameof(queue));
        _reserve = reserve ?? throw new ArgumentNullException(nameof(reserve));
        _locality = locality;
    }

    /// <summary>A dispatch queue over a bare scheduler (no admission state: the simulator's queue).</summary>
    public static IDispatchQueue Over(IRequestScheduler scheduler) => new SchedulerQueue(scheduler ?? throw new ArgumentNullException(nameof(scheduler)));

    /// <summary>
    /// Releases requests to <paramref name="target"/> while capacity lasts; returns the free capacity left (0 or less
    /// when the fleet is full; requests may still wait then).
    /// </summary>
    public int Pump(IDispatchTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var capacity = target.Capacity(first: true);
        if (_overdraw)
        {
            _reserve.Repay(capacity.Free);
        }

        while (_queue.Count > 0)
        {
            bool reclaimed = capacity.Free <= 0;
            var r = reclaimed
                ? (_reserve.LentOut > 0 ? _queue.ReclaimFor(_reserve) : _overdraw ? _queue.OverdrawFor(_reserve) : null)
                : _queue.DequeueFor(_reserve, capacity.Free, _locality, capacity.Worker);
            if (r is null)
            {
                break;
            }

            target.Release(r, reclaimed);
            capacity = target.Capacity(first: false);
        }

        return capacity.Free;
    }

    private sealed class SchedulerQueue(IRequestScheduler scheduler) : IDispatchQueue
    {
        public int Count => scheduler.Count;

        public QueuedRequest? DequeueFor(ReservedCapacity reserve, int free, LocalityPick? pick, WorkerInfo? worker) => reserve.Next(scheduler, free, pick, worker);

        public QueuedRequest? ReclaimFor(ReservedCapacity reserve) => reserve.Reclaim(scheduler, out _);

        public QueuedRequest? OverdrawFor(ReservedCapacity reserve) => reserve.Overdraw(scheduler);
    }
}
