using Gateway.Core.Agents;

namespace Gateway.Agents;

/// <summary>Agent KV-retention settings (config section <c>Gateway:Agents</c>).</summary>
public sealed class AgentRetentionOptions
{
    /// <summary>Configuration section.</summary>
    public const string SectionName = "Gateway:Agents";

    /// <summary>"shadow" (default: predict and score, send nothing), "enabled" (send retain/release hints) or "off".</summary>
    public string Mode { get; set; } = "shadow";

    /// <summary>Retention policy: off, fixed:SECONDS, predictive.</summary>
    public string Policy { get; set; } = PredictiveRetentionPolicy.PolicyName;

    /// <summary>Timeout of one hint request to a worker.</summary>
    public TimeSpan HintTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>predictive: GPU-seconds one second of holding a whole worker pool is worth (<see cref="RetentionOptions.MemoryCostWeight"/>,
    /// the simulator's <c>--retention-cost</c>); null = the policy's default (1).</summary>
    public double? MemoryCostWeight { get; set; }

    /// <summary>predictive: share of a worker's blocks its pins may hold (<see cref="RetentionOptions.PinBudgetFraction"/>,
    /// the simulator's <c>--retention-budget</c>); null = the policy's default (0.4).</summary>
    public double? PinBudgetFraction { get; set; }

    /// <summary>predictive: renewals of a pin whose TTL runs out before the session came back (<see cref="RetentionOptions.MaxRenewals"/>,
    /// the simulator's <c>--retention-renewals</c>; 0 = none); null = the policy's default.</summary>
    public int? MaxRenewals { get; set; }

    /// <summary>predictive: price pins by each worker's reported eviction age (<see cref="RetentionOptions.EvictionAge"/>, the
    /// simulator's <c>--retention-eviction-age</c>): <c>off</c>, <c>cover</c> or <c>shift</c>; null = the policy's default (off).</summary>
    public string? EvictionAge { get; set; }

    /// <summary>predictive: the guard that stops HBM pins on a worker where they are losing (<see cref="RetentionOptions.PinGuard"/>,
    /// the simulator's <c>--retention-guard</c>); null = the policy's default (on).</summary>
    public bool? PinGuard { get; set; }

    /// <summary>predictive: pin idle contexts in HBM on workers without a host tier (<see cref="RetentionOptions.HbmPins"/>,
    /// the simulator's <c>--retention-hbm-pins</c>); null = the policy's default (off).</summary>
    public bool? HbmPins { get; set; }

    /// <summary>
    /// Longest the gateway remembers an agent session after its last turn (its prefix chain, open gap, own gap statistics
    /// and pin bookkeeping; <see cref="RetentionOptions.MaxSessionIdle"/>); a session that comes back later starts a new
    /// one. Default 10 minutes: twice the longest pin (<see cref="RetentionOptions.MaxTtlSeconds"/>, 300 s) and the
    /// router's session affinity, so nothing a later turn could still use is forgotten; at least the longest pin.
    /// </summary>
    public TimeSpan SessionIdleTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Longest the gateway remembers a session that has had a single turn (its chain, main line and open gap;
    /// <see cref="RetentionOptions.MaxSingleTurnIdle"/>), unless a pin of its context lasts longer; a second turn gives the
    /// session the full <see cref="SessionIdleTimeout"/>. Every request with block hashes opens a session, and most that
    /// stay at one turn are one-shot requests that never come back: a burst of them is forgotten after this instead of
    /// being held for the full idle timeout. A session whose second turn comes later starts a new one (its first gap is
    /// scored as abandoned). Default 60 s; more than 0 and at most <see cref="SessionIdleTimeout"/>.
    /// </summary>
    public TimeSpan SingleTurnIdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The policy knobs these settings give (defaults where unset).</summary>
    public RetentionOptions PolicyOptions()
    {
        var o = new RetentionOptions { MaxSessionIdle = SessionIdleTimeout, MaxSingleTurnIdle = SingleTurnIdleTimeout };
        if (MaxRenewals is int renewals)
        {
            o = o with { MaxRenewals = renewals };
        }

        if (MemoryCostWeight is double w)
        {
            o = o with { MemoryCostWeight = w };
        }

        if (PinBudgetFraction is double b)
        {
            o = o with { PinBudgetFraction = b };
        }

        if (EvictionAge is not null && RetentionPolicies.TryParseEvictionAge(EvictionAge, out var mode))
        {
            o = o with { EvictionAge = mode };
        }

        if (PinGuard is bool guard)
        {
            o = o with { PinGuard = guard };
        }

        if (HbmPins is bool hbm)
        {
            o = o with { HbmPins = hbm };
        }

        return o;
    }

    /// <summary>
    /// Program-level ordering (<see cref="Gateway.Core.Agents.ResumedTurnPriority"/>): a turn that closes a tool gap goes ahead of fresh work
    /// of its tenant in the gateway queue and is sent with <c>x-request-priority</c>. Acts whenever the agent layer is
    /// on (shadow or enabled mode); the retention hints are independent of it.
    /// </summary>
    public bool ResumedTurnPriority { get; set; }

    /// <summary>Worker priority of a resumed turn (<see cref="ProgramPriorityOptions.EnginePriority"/>).</summary>
    public int ResumedEnginePriority { get; set; } = new ProgramPriorityOptions().EnginePriority;

    /// <summary>Gateway-queue credit of a resumed turn in cost units (<see cref="ProgramPriorityOptions.QueueCredit"/>).</summary>
    public double ResumedQueueCredit { get; set; } = new ProgramPriorityOptions().QueueCredit;

    /// <summary>Longest tool gap after which a turn still counts as resumed, seconds (<see cref="ProgramPriorityOptions.MaxGapSeconds"/>).</summary>
    public double ResumedMaxGapSeconds { get; set; } = new ProgramPriorityOptions().MaxGapSeconds;

    /// <summary>Boost only resumed turns whose pin still covers them (<see cref="ProgramPriorityOptions.PinnedOnly"/>).</summary>
    public bool ResumedPinnedOnly { get; set; }

    /// <summary>
    /// Prefetches (<c>POST /worker/kv/prefetch</c>, workers with a host tier) waiting for their time at once, across all
    /// sessions; the oldest is dropped for a new one (<see cref="PrefetchScheduler"/>).
    /// </summary>
    public int MaxPendingPrefetches { get; set; } = 4096;
}
