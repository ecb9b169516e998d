namespace Gateway.Core.Agents;

/// <summary>A finished turn, as the host (gateway or simulator) saw it.</summary>
public sealed record TurnCompletion
{
    /// <summary>Session id (<see cref="AgentIdentity.SessionId"/>).</summary>
    public required string SessionId { get; init; }

    /// <summary>Tenant path.</summary>
    public required string Tenant { get; init; }

    /// <summary>Agent kind (<see cref="AgentIdentity.AgentKind"/>).</summary>
    public string AgentKind { get; init; } = "unknown";

    /// <summary>How the turn ended (<see cref="TurnClassifier.Classify"/>).</summary>
    public required TurnOutcome Outcome { get; init; }

    /// <summary>Worker index that served the turn (its KV holds the context).</summary>
    public required int Worker { get; init; }

    /// <summary>Full KV blocks of the turn's prompt (what a pin would hold).</summary>
    public required int Blocks { get; init; }

    /// <summary>KV blocks of that worker (memory cost is the held share of the pool).</summary>
    public required int WorkerKvBlocks { get; init; }

    /// <summary>Seconds of prefill a cache hit on the context saves (from the worker's profile).</summary>
    public required double PrefillSeconds { get; init; }

    /// <summary>
    /// Model turns before this one in its conversation (the prompt's assistant messages; -1 = unknown). The session's next
    /// turn has one more; a turn with more than that follows turns served elsewhere (see
    /// <see cref="IRetentionPolicy.OnTurnArrived"/>).
    /// </summary>
    public int PriorTurns { get; init; } = -1;

    /// <summary>
    /// The session's turns so far, this one included, as the host's session tracker counted them
    /// (<see cref="AgentIdentity.Turn"/>; 0 = unknown). The gap after a session's first turn is kept only
    /// <see cref="RetentionOptions.MaxSingleTurnIdle"/> unless a pin outlasts that.
    /// </summary>
    public int SessionTurn { get; init; }

    /// <summary>The host knows the session is over (no further turn): release.</summary>
    public bool SessionEnded { get; init; }

    /// <summary>Blocks of the worker's host-memory tier (0 = none: the policy pins in HBM or drops).</summary>
    public int WorkerHostKvBlocks { get; init; }

    /// <summary>Seconds the worker needs to reload the context from its host tier (PCIe), to weigh against <see cref="PrefillSeconds"/>.</summary>
    public double ReloadSeconds { get; init; }

    /// <summary>
    /// The worker's measured eviction age in seconds (Che's characteristic time T_c of its LRU prefix cache: about how long
    /// an unused cached block survives there): NaN = unknown, +∞ = nothing evicted lately. Read by
    /// <see cref="RetentionOptions.EvictionAge"/>.
    /// </summary>
    public double EvictionAgeSeconds { get; init; } = double.NaN;

    /// <summary>
    /// The worker's count of blocks recomputed because pins had pushed them out of its LRU (cumulative; -1 = not reported),
    /// read by <see cref="PinGuard"/>.
    /// </summary>
    public long WorkerPinCostBlocks { get; init; } = -1;

    /// <summary>The worker's count of blocks hit only because a pin kept them (cumulative; -1 = not reported).</summary>
    public long WorkerPinSavedBlocks { get; init; } = -1;
}

/// <summary>
/// The gap a session's new turn closed: its kind (after a tool call or a human turn), its length and whether a pin of the
/// policy still covered it (as decided: the worker may have dropped it under pressure since).
/// </summary>
/// <param name="Closed">False when the session had no open gap (first turn, forgotten, or abandoned).</param>
/// <param name="Kind">The gap's kind.</param>
/// <param name="Seconds">Seconds from the end of the previous turn to this arrival (NaN when not <paramref name="Closed"/>).</param>
/// <param name="Pinned">A pin was sent for the gap and its TTL had not passed.</param>
public readonly record struct ClosedGap(bool Closed, GapKind Kind, double Seconds, bool Pinned)
{
    /// <summary>No gap was open.</summary>
    public static ClosedGap None { get; } = new(false, GapKind.Human, double.NaN, false);

    /// <summary>The new turn resumes a program after a tool call (its previous turn ended with tool calls).</summary>
    public bool AfterTool => Closed && Kind == GapKind.Tool;
}

/// <summary>What to send to a worker.</summary>
public enum RetentionActionKind
{
    /// <summary>POST /worker/kv/retain (engine Retain) for the session's most recent request.</summary>
    Retain,

    /// <summary>POST /worker/kv/release for the session.</summary>
    Release,

    /// <summary>POST /worker/kv/prefetch for the session, <see cref="RetentionAction.PrefetchAfterMs"/> after the hint (unless its turn came first).</summary>
    Prefetch,
}

/// <summary>One hint to a worker. <paramref name="Blocks"/>: pin only this many leading blocks of the context (0: all).</summary>
/// <see cref="Tier"/>: where the worker should keep it; <see cref="PrefetchAfterMs"/> (host tier only, 0 = none): ask the worker to
/// bring it back into HBM (<c>POST /worker/kv/prefetch</c>) this long after the hint.
public readonly record struct RetentionAction(RetentionActionKind Kind, string SessionId, int Worker, long TtlMs, double Value, int Priority, int Blocks = 0)
{
    /// <summary>The tier the context should wait in.</summary>
    public RetentionTier Tier { get; init; }

    /// <summary>Milliseconds after the hint at which to prefetch the context back into HBM (0 = no prefetch).</summary>
    public long PrefetchAfterMs { get; init; }
}

/// <summary>
/// Shadow-mode score of a retention policy: what its decisions would have done against the gaps that really happened
/// (hit: the session came back within the TTL; unused: pinned block-seconds of pins nobody came back to).
/// </summary>
public sealed class RetentionStats
{
    /// <summary>Retain decisions.</summary>
    public long Retains { get; internal set; }

    /// <summary>Release decisions (human gap / session end / budget eviction).</summary>
    public long Releases { get; internal set; }

    /// <summary>Retains skipped: not worth it, or no room under the worker's budget.</summary>
    public long Skipped { get; internal set; }

    /// <summary>Of those, skipped for lack of budget.</summary>
    public long BudgetSkipped { get; internal set; }

    /// <summary>Pins extended when their TTL ran out and the session had not come back (predictive with renewal).</summary>
    public long Renewals { get; internal set; }

    /// <summary>Pins evicted by the planner's budget for a more valuable one.</summary>
    public long BudgetEvictions { get; internal set; }

    /// <summary>Pins the worker dropped under memory pressure before their session came back (its <c>pin_dropped</c> KV events).</summary>
    public long EngineDrops { get; internal set; }

    /// <summary>Contexts left to the host tier with a prefetch before their predicted return (instead of an HBM pin).</summary>
    public long HostRetains { get; internal set; }

    /// <summary>HBM pins the guard turned down on workers where recent pins were being dropped.</summary>
    public long GuardSkips { get; internal set; }

    /// <summary>Gaps that closed (the session's next turn arrived).</summary>
    public long GapsClosed { get; internal set; }

    /// <summary>
    /// Gaps ended without an observation because the session's next turns were served elsewhere (another gateway replica):
    /// the arriving turn had more model turns before it than the gap's turn plus one. Not counted in <see cref="GapsClosed"/>.
    /// </summary>
    public long Superseded { get; internal set; }

    /// <summary>Closed tool gaps.</summary>
    public long ToolGapsClosed { get; internal set; }

    /// <summary>Retained gaps that closed within the TTL.</summary>
    public long Hits { get; internal set; }

    /// <summary>Retained gaps that outlived the TTL (or never closed).</summary>
    public long Misses { get; internal set; }

    /// <summary>Tool gaps that closed while nothing was retained (a pin would have been needed).</summary>
    public long Uncovered { get; internal set; }

    /// <summary>Block-seconds the decisions pin (until return or TTL).</summary>
    public double PinnedBlockSeconds { get; internal set; }

    /// <summary>Of those, block-seconds of pins nobody came back to.</summary>
    public double UnusedBlockSeconds { get; internal set; }

    /// <summary>Prefill seconds the hits save.</summary>
    public double SavedPrefillSeconds { get; internal set; }

    /// <summary>Sum of |ln(gap / predicted median)| over closed tool gaps (predictive only).</summary>
    public double AbsLogErrorSum { get; internal set; }

    /// <summary>Closed tool gaps scored for <see cref="AbsLogErrorSum"/>.</summary>
    public long AbsLogErrorCount { get; internal set; }

    /// <summary>Hits / (hits + misses).</summary>
    public double HitRate => Hits + Misses == 0 ? 0 : (double)Hits / (Hits + Misses);

    /// <summary>Unused / pinned block-seconds.</summary>
    public double UnusedShare => PinnedBlockSeconds <= 0 ? 0 : UnusedBlockSeconds / PinnedBlockSeconds;

    /// <summary>Mean |ln(gap / predicted median)|: 0.69 means off by 2x on (geometric) average.</summary>
    public double MeanAbsLogError => AbsLogErrorCount == 0 ? 0 : AbsLogErrorSum / AbsLogErrorCount;
}

/// <summary>
/// A KV-retention policy (issue 7): told when a turn finishes and when a session's next turn arrives, it returns the
/// retain / release hints to send, and scores itself (<see cref="Stats"/>). In shadow mode the host records the
/// actions without sending them; the stats are the same either way. Not thread-safe: the host serialises.
/// </summary>
public interface IRetentionPolicy
{
    /// <summary>Name (off, fixed:SECONDS, predictive).</summary>
    string Name { get; }

    /// <summary>Shadow-mode score.</summary>
    RetentionStats Stats { get; }

    /// <summary>A turn finished: appends the hints to send to <paramref name="actions"/>.</summary>
    void OnTurnCompleted(TurnCompletion turn, List<RetentionAction> actions);

    /// <summary>
    /// The session's next turn arrived: closes its gap (one observation) and says what it was (kind, seconds, whether a
    /// pin of this policy still covered it); <see cref="ClosedGap.None"/> if none was open. With
    /// <paramref name="priorTurns"/> known (the arriving prompt's model turns) and more than one above the turn that opened
    /// the gap, the session's intervening turns were served elsewhere (another gateway replica): the gap is
    /// <see cref="RetentionStats.Superseded"/> — ended without an observation (its length would span several turns) and
    /// without a hit or miss (this replica cannot see whether its pin was used) — and <see cref="ClosedGap.None"/> returned.
    /// </summary>
    ClosedGap OnTurnArrived(string sessionId, int priorTurns = -1);

    /// <summary>
    /// When the earliest pin this policy may still renew runs out (null: none). The host calls <see cref="OnPinsExpiring"/>
    /// a little before it (its lead covers the hint's trip to the worker).
    /// </summary>
    DateTimeOffset? NextPinExpiry { get; }

    /// <summary>
    /// Pins running out at or before <paramref name="dueBy"/> whose session has not come back: the policy re-decides
    /// each (renew: a retain with the new TTL from now and refreshed value; or let it lapse: nothing to send) and
    /// appends the hints (renewals, and releases of pins the budget evicts for them). Policies that do not renew send
    /// nothing.
    /// </summary>
    void OnPinsExpiring(DateTimeOffset dueBy, List<RetentionAction> actions);

    /// <summary>
    /// The worker dropped the session's pin under memory pressure (its <c>pin_dropped</c> KV event): the pin stops counting
    /// against that worker's budget, is not renewed, and the gap is scored as a pin that ended unused (its return, if it
    /// comes, as uncovered); the gap stays open so the return is still learnt from. Ignored unless the session's open gap
    /// holds a live pin on <paramref name="worker"/>.
    /// </summary>
    void OnPinDropped(string sessionId, int worker);
}
