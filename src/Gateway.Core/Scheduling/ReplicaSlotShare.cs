namespace Gateway.Core.Scheduling;

/// <summary>
/// One gateway replica's share of one worker's slots as its last slot sync left it: the <see cref="Grant"/> (slots
/// this replica holds; the grants of all replicas together never exceed the worker's slots, which shared state
/// enforces atomically) and the max-min fair <see cref="Target"/> of the replicas' demands. Pure: the rule that turns
/// them into how many requests this replica may have in flight there (<see cref="Limit"/>), and the share a replica
/// serves on while the shared state is unreachable (<see cref="Fallback"/>).
/// </summary>
/// <param name="Grant">Slots granted to this replica on the worker at the last sync.</param>
/// <param name="Target">This replica's fair target on the worker at the last sync (its demand when nobody contends).</param>
public readonly record struct ReplicaSlotShare(int Grant, int Target)
{
    /// <summary>Default standing slots per worker of a live replica (<see cref="Demand"/>): one.</summary>
    public const int DefaultStandingSlots = 1;

    /// <summary>
    /// The demand a replica publishes for a worker: the requests it has in flight there (<paramref name="inFlight"/>)
    /// plus those waiting in its queue (<paramref name="queued"/>), but at least <paramref name="standing"/> and at most
    /// the worker's <paramref name="slots"/>. The standing part keeps a slot granted to a replica that is idle at the
    /// moment, so the first request to reach it is released at once: a grant only grows into slots no replica holds,
    /// so without it that request waits until one of the busy replicas' requests finishes and both re-sync (a quiet
    /// tenant alone on its replica then queues behind a flood entering through another one).
    /// </summary>
    public static int Demand(int inFlight, int queued, int slots, int standing)
    {
        int want = (int)Math.Min(int.MaxValue, (long)Math.Max(0, inFlight) + Math.Max(0, queued));
        return Math.Min(Math.Max(0, slots), Math.Max(Math.Max(0, standing), want));
    }

    /// <summary>
    /// min(grant, target), never below 0: a replica over its target takes no new request there, so its grant falls
    /// as its requests finish and the slots it frees go to the replicas below theirs.
    /// </summary>
    public int Limit => Math.Max(0, Math.Min(Grant, Target));

    /// <summary>
    /// The limit while the shared state is away: the larger of the last shared limit (<paramref name="last"/>; null
    /// when this worker was never synced) and an even split of <paramref name="slots"/> over the
    /// <paramref name="replicasSeen"/> replicas the last sync saw, at least one slot (serving never stops) and at most
    /// all of them (none of a worker without slots). Each replica keeps what it held, so the next sync reconciles without a burst.
    /// </summary>
    public static int Fallback(ReplicaSlotShare? last, int slots, int replicasSeen)
    {
        int even = Math.Max(0, slots) / Math.Max(1, replicasSeen);
        return Math.Min(Math.Max(0, slots), Math.Max(1, Math.Max(last?.Limit ?? 0, even)));
    }
}
