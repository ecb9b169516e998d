namespace Gateway.Core.Agents;

/// <summary>Knobs shared by the retention policies.</summary>
public sealed record RetentionOptions
{
    /// <summary>
    /// GPU-seconds one second of holding the whole KV pool is worth (the memory side of Continuum's trade-off): holding a
    /// share φ of a worker's pool for t seconds costs <c>MemoryCostWeight · φ · t</c>.
    /// </summary>
    public double MemoryCostWeight { get; init; } = 1.0;

    /// <summary>Longest TTL the predictive planner considers.</summary>
    public double MaxTtlSeconds { get; init; } = 300;

    /// <summary>Shortest TTL worth sending.</summary>
    public double MinTtlSeconds { get; init; } = 0.5;

    /// <summary>Share of each worker's KV blocks the predictive planner lets its pins hold (by value per block).</summary>
    public double PinBudgetFraction { get; init; } = 0.4;

    /// <summary>
    /// Open gaps remembered (sessions whose next turn has not come): a session that never returns is forgotten oldest
    /// first, scored like an abandoned pin, so memory stays bounded however many sessions a gateway sees.
    /// </summary>
    public int MaxOpenGaps { get; init; } = 65_536;

    /// <summary>
    /// Longest a session's state is kept after its last turn (its open gap, its own level in the predictor): a session
    /// that comes back later is a new one and its gap counts as abandoned. Null (the default): bounded by
    /// <see cref="MaxOpenGaps"/> only (the simulator replays finite traces); a long-running gateway sets it so its memory
    /// does not grow with every session it has ever seen until that count is reached.
    /// </summary>
    public TimeSpan? MaxSessionIdle { get; init; }

    /// <summary>
    /// Longest the gap after a session's first turn (<see cref="TurnCompletion.SessionTurn"/> = 1) is kept when no pin
    /// holds it longer: most such sessions are one-shot requests that never come back, so a burst of them does not hold
    /// memory for <see cref="MaxSessionIdle"/>. Null (the default): as long as any other gap. At most
    /// <see cref="MaxSessionIdle"/>.
    /// </summary>
    public TimeSpan? MaxSingleTurnIdle { get; init; }

    /// <summary>
    /// Renewals of one gap's pin (0: none, the default): when the TTL runs out before the session came back, re-decide
    /// with the gap distribution conditional on the gap having lasted that long
    /// (<see cref="PredictiveRetentionPolicy.BestRenewal"/>), under the same budget. Off by default: over 9 seeds it
    /// re-prefilled more on the small fleet and did not help both fleets (docs/policies/agent-retention.md, "Pin renewal").
    /// </summary>
    public int MaxRenewals { get; init; }

    /// <summary>
    /// The <see cref="Agents.PinGuard"/> on HBM-only workers (default on): no HBM pins to a worker while its own pin account
    /// (blocks pins cost other contexts against those they saved) or its share of dropped pins says pinning is losing
    /// there. Off: the predictive rule pins whatever it decides (for measuring the guard; docs/policies/agent-retention.md).
    /// </summary>
    public bool PinGuard { get; init; } = true;

    /// <summary>
    /// Pin idle contexts in HBM on workers without a host tier (default off: such a worker is left to its LRU, as with
    /// <c>off</c>, and the policy only scores its gaps). On the agent traces HBM pins re-prefilled more than `off` on
    /// every measured configuration (docs/results/agent-tiers.md): they change what each worker caches, which moves
    /// later routing and co-location, and no guard on their own account could keep every seed within 2 % of `off`.
    /// </summary>
    public bool HbmPins { get; init; }

    /// <summary>Learn each session's own gaps as the most specific level of the hierarchy.</summary>
    public bool PerSessionLevel { get; init; } = true;

    /// <summary>
    /// How the predictive planner uses the worker's eviction age T_c (<see cref="TurnCompletion.EvictionAgeSeconds"/>, Che's
    /// characteristic time of its LRU) to price a pin by what it changes: <see cref="EvictionAgeMode.Off"/> (default: ignore it);
    /// <see cref="EvictionAgeMode.Cover"/>; <see cref="EvictionAgeMode.Shift"/>. Unknown T_c (NaN) = the rule without it.
    /// </summary>
    public EvictionAgeMode EvictionAge { get; init; } = EvictionAgeMode.Off;

    /// <summary>Predictor knobs.</summary>
    public GapPredictorOptions Predictor { get; init; } = new();
}

/// <summary>
/// How a pin is priced given the worker's eviction age T_c (Che's approximation: an unused cached block survives an idle
/// period g iff g &lt; T_c). A return within T_c is a hit without a pin, so only the part of the gap distribution beyond T_c
/// counts, and only the residency the pin adds is charged. Names as accepted by <see cref="RetentionPolicies.TryParseEvictionAge"/>.
/// </summary>
public enum EvictionAgeMode
{
    /// <summary>Ignore T_c: benefit P(gap ≤ t)·saved, cost c·t (Continuum's rule).</summary>
    Off,

    /// <summary>
    /// The pin keeps the context to t; without it the LRU keeps it to T_c: benefit [P(gap ≤ t) − P(gap ≤ T_c)]⁺·saved, cost
    /// c·max(0, t − T_c). TTL sent: t. (The engine puts a lapsed pin's blocks back in the LRU at their last use, as assumed.)
    /// </summary>
    Cover,

    /// <summary>
    /// Assumes a lapsed pin's blocks re-enter the LRU as just used and survive another T_c (engines that unpin that way; the
    /// reference engine puts them back at their last use instead), so a TTL t keeps the
    /// context to t + T_c: benefit [P(gap ≤ t + T_c) − P(gap ≤ T_c)]·saved, cost c·t (the residency added). TTL sent: t.
    /// </summary>
    Shift,
}
