namespace Simulator.Simulation;

/// <summary>p50 / p90 / p99 of a latency, in milliseconds (NaN when there were no samples).</summary>
public readonly record struct Percentiles(double P50, double P90, double P99)
{
    /// <summary>Computes from samples (sorts them).</summary>
    public static Percentiles Of(List<double> samples)
    {
        samples.Sort();
        return new Percentiles(Stats.Percentile(samples, 50, true), Stats.Percentile(samples, 90, true), Stats.Percentile(samples, 99, true));
    }
}

/// <summary>Per-tenant outcome of a run.</summary>
public sealed class TenantResult
{
    /// <summary>Tenant path.</summary>
    public required string Tenant { get; init; }

    /// <summary>Weight of the tenant's own node.</summary>
    public double Weight { get; init; }

    /// <summary>Weighted tokens served over the whole run (uncached prefill × 1 + output × 2).</summary>
    public double ServiceTokens { get; init; }

    /// <summary>Fraction of weighted service during contended time.</summary>
    public double Share { get; init; }

    /// <summary>What its weights entitle it to among the tenants backlogged then.</summary>
    public double EntitledShare { get; init; }

    /// <summary>TTFT percentiles of its requests.</summary>
    public Percentiles TtftMs { get; init; }

    /// <summary>Completed requests.</summary>
    public int Completed { get; init; }
}

/// <summary>Outcome of one (routing, scheduling, retention) combination.</summary>
public sealed class RunResult
{
    public required string Routing { get; init; }
    public required string Scheduling { get; init; }
    public required string Retention { get; init; }

    /// <summary>Whether predictive retention's guard on HBM pins was on (--retention-guard).</summary>
    public bool RetentionGuard { get; init; } = true;

    /// <summary>The seed of this run's workload and policies.</summary>
    public int Seed { get; init; }
    public Percentiles TtftMs { get; init; }
    public Percentiles TpotMs { get; init; }
    public Percentiles E2eMs { get; init; }
    public double PrefixHitRatio { get; init; }
    public double ThroughputTokensPerSecond { get; init; }
    public int Completed { get; init; }
    public int Rejected { get; init; }
    public double WorkerLoadMaxOverMin { get; init; }
    public double JainIndex { get; init; }
    public double ContendedSeconds { get; init; }
    public double MakespanSeconds { get; init; }
    public long Preemptions { get; init; }

    /// <summary>Prompt tokens served by reloading KV from the host tier instead of recomputing it (part of the prefix hits).</summary>
    public long HostReloadedTokens { get; init; }

    /// <summary>Contexts the retention policy demoted to the host tier.</summary>
    public long HostRetains { get; init; }

    /// <summary>Blocks prefetched from host into HBM ahead of a predicted return.</summary>
    public long PrefetchedBlocks { get; init; }

    /// <summary>Host-tier blocks per worker (0 = none).</summary>
    public int HostKvBlocks { get; init; }
    public required List<TenantResult> Tenants { get; init; }
    public double ReprefillTokensResumed { get; init; }
    public double PinnedBlockSeconds { get; init; }
    public double PinnedUnusedBlockSeconds { get; init; }

    /// <summary>Resumed turns after a tool gap (the previous turn ended with tool_use).</summary>
    public ResumedStats ResumedAfterTool { get; init; } = new();

    /// <summary>Resumed turns after a human gap (end_turn, or no stop reason).</summary>
    public ResumedStats ResumedAfterHuman { get; init; } = new();

    /// <summary>The retention policy's shadow score (null for off without a policy).</summary>
    public Gateway.Core.Agents.RetentionStats? RetentionStats { get; init; }

    /// <summary>Sorted TTFT samples (ms), for the CDF chart.</summary>
    public required List<double> TtftSamplesMs { get; init; }

    /// <summary>Service per tenant per time bucket (weighted tokens), for the chart.</summary>
    public required double[][] ServiceOverTime { get; init; }

    /// <summary>Width of a service bucket, seconds.</summary>
    public double ServiceBucketSeconds { get; init; }

    /// <summary>Wall-clock seconds the run took (not written to result.json: it would break byte-identity).</summary>
    public double WallSeconds { get; set; }

    /// <summary>Every finished or rejected request in completion order (for tests and validation; not in result.json).</summary>
    public required List<RequestRecord> Requests { get; init; }

    /// <summary>Events processed.</summary>
    public long Events { get; init; }

    /// <summary>Whether dispatch used the locality pick (routing with a prefix index and --locality on).</summary>
    public bool Locality { get; init; }

    /// <summary>Program-level ordering of resumed turns (--program-priority): off, on or pinned.</summary>
    public string ProgramPriority { get; init; } = "off";

    /// <summary>Turns that got the resumed-turn boost (closed a tool gap of at most MaxGapSeconds).</summary>
    public long ResumedTurnsBoosted { get; init; }

    /// <summary>hfair's lag bound (cost units) for the locality pick.</summary>
    public double LagBound { get; init; }

    /// <summary>Locality picks hfair made.</summary>
    public long LocalityPicks { get; init; }

    /// <summary>Locality picks that chose a different request than strict fair order would have.</summary>
    public long LocalityReorders { get; init; }

    /// <summary>Largest lag (cost units) observed at a locality pick; never above <see cref="LagBound"/>.</summary>
    public double MaxDispatchLag { get; init; }

    /// <summary>Free dispatch slots held back for within-share tenants (<c>--reserve</c>).</summary>
    public int Reserve { get; init; }

    /// <summary>Dispatches that took a reserved slot.</summary>
    public long ReservedPicks { get; init; }

    /// <summary>Dispatches that borrowed a reserved slot because no within-share request was queued.</summary>
    public long ReserveLent { get; init; }

    /// <summary>Within-share requests dispatched beyond capacity by taking back a lent slot.</summary>
    public long ReserveReclaimed { get; init; }

    /// <summary>Requests sent to their engine with the under-share priority (<c>--under-share-priority</c>).</summary>
    public long UrgentDispatches { get; init; }

    /// <summary>The agent sessions' KV working set next to the fleet's pool (null without agent sessions).</summary>
    public WorkingSet? AgentWorkingSet { get; init; }
}

/// <summary>One request's outcome (seconds of virtual time).</summary>
public sealed record RequestRecord(string Session, int Turn, string Tenant, double Arrival, double FirstToken, double Finish, int Worker, int PromptTokens, int CachedTokens, int OutputTokens, bool Rejected)
{
    /// <summary>When the gateway dispatched it (NaN when rejected before dispatch).</summary>
    public double Dispatch { get; init; } = double.NaN;

    /// <summary>The routing policy's reason for its worker (e.g. <c>affinity</c>, <c>load</c>, <c>session</c>, <c>spill</c>).</summary>
    public string Reason { get; init; } = "";

    /// <summary>Prompt tokens the chosen worker still had to prefill when the request was dispatched to it (its queue).</summary>
    public long QueuedPrefillAtDispatch { get; init; }

    /// <summary>The worker of the session's previous turn (−1: first turn or one-shot).</summary>
    public int PreviousWorker { get; init; } = -1;

    /// <summary>Cached tokens the routing policy predicted on the chosen worker.</summary>
    public int PredictedCachedTokens { get; init; }

    /// <summary>It resumed its session after a tool call (its previous turn ended in tool calls).</summary>
    public bool AfterToolGap { get; init; }

    /// <summary>Prompt tokens it shares with the session's previous turn (what a cache of that turn could serve).</summary>
    public int ReusableTokens { get; init; }

    /// <summary>Of those, tokens the previous turn's worker still held (either tier) when it arrived.</summary>
    public int CachedOnArrival { get; init; }

    /// <summary>Where its time to first token went (<see cref="TtftBreakdown"/>); null unless the run recorded it.</summary>
    public TtftBreakdown? Breakdown { get; init; }
}

/// <summary>
/// Where one request's time to first token went (seconds of virtual time): in the gateway's queue
/// (<see cref="RequestRecord.Dispatch"/> − arrival), waiting for the engine step that was running when it reached the worker
/// (<see cref="StepInProgressSeconds"/>), waiting in the engine's queue for admission (steps that ran without it), and
/// in the steps that computed its prompt (<see cref="PrefillSteps"/>, with <see cref="PrefillDecodes"/> decodes of other
/// sequences riding along and <see cref="PrefillSharedTokens"/> prefill tokens of others sharing them).
/// </summary>
public sealed record TtftBreakdown
{
    /// <summary>Engine priority it was sent with.</summary>
    public int Priority { get; init; }

    /// <summary>Start of the first step that computed part of its prompt (its admission).</summary>
    public double FirstScheduled { get; init; }

    /// <summary>Rest of the step that was running on its worker when it was dispatched (0 when the worker was idle).</summary>
    public double StepInProgressSeconds { get; init; }

    /// <summary>Steps that computed part of its prompt up to its first token (more than one: chunked, or preempted and recomputed).</summary>
    public int PrefillSteps { get; init; }

    /// <summary>Total duration of those steps.</summary>
    public double PrefillStepSeconds { get; init; }

    /// <summary>Decodes of other sequences in those steps, summed.</summary>
    public int PrefillDecodes { get; init; }

    /// <summary>Prefill tokens of other sequences in those steps, summed.</summary>
    public int PrefillSharedTokens { get; init; }

    /// <summary>Times it was preempted before its first token.</summary>
    public int Preempted { get; init; }
}
