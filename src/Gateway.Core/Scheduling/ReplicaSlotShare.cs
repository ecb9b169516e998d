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
