using System.Globalization;
using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Simulator.Traces;
using Worker.Engine;

namespace Simulator;

/// <summary>
/// Everything that defines a simulation: the trace, the fleet, the workload shaping and the policies to compare.
/// Built from flags or from a scenario file (JSON with the same names in snake_case, e.g.
/// <c>{"trace": "...", "format": "mooncake", "workers": 8, "routing": ["round-robin", "dynamo-kv"]}</c>);
/// flags given on the command line override the file.
/// </summary>
public sealed partial class Scenario
{
    /// <summary>Trace file or folder.</summary>
    public string Trace { get; set; } = "";

    /// <summary>Trace format.</summary>
    public TraceFormat Format { get; set; } = TraceFormat.Canonical;

    /// <summary>Stop at the first malformed line instead of skipping it.</summary>
    public bool Strict { get; set; }

    /// <summary>Workers (one engine each).</summary>
    public int Workers { get; set; } = 4;

    /// <summary>Engine roofline profile name.</summary>
    public string Profile { get; set; } = ModelProfiles.H100Llama3_8B;

    /// <summary>KV blocks per worker (0: the profile's default).</summary>
    public int KvBlocks { get; set; }

    /// <summary>Host-memory KV tier per worker in blocks (the worker's --host-kv-blocks): 0 = none, −1 = 2 × the HBM pool.</summary>
    public int HostKvBlocks { get; set; }

    /// <summary>Largest share of each engine's KV blocks retention pins may hold (the worker's --max-pinned-fraction).</summary>
    public double MaxPinnedFraction { get; set; } = 0.5;

    /// <summary>Engine block size in tokens.</summary>
    public int BlockSize { get; set; } = 16;

    /// <summary>Per-step token budget of each engine.</summary>
    public int MaxBatchTokens { get; set; } = 8192;

    /// <summary>Engine long-prefill cap per step (vLLM long_prefill_token_threshold); 0 = off.</summary>
    public int LongPrefillTokenThreshold { get; set; }

    /// <summary>Running-sequence cap of each engine.</summary>
    public int MaxRunningSequences { get; set; } = 256;

    /// <summary>Longest prompt + output an engine accepts (longer requests are rejected).</summary>
    public int MaxModelLength { get; set; } = 1_048_576;

    /// <summary>Capacity rule: a worker takes a new request from the gateway queue only while fewer than this many requests wait in its engine queue.</summary>
    public int MaxWaitingPerWorker { get; set; } = 4;

    /// <summary>
    /// Capacity rule (0: off): a worker takes a new request only while the prompt tokens it was sent and has not yet
    /// prefilled (<see cref="Gateway.Core.Routing.WorkerInfo.PendingPrefillTokens"/>) are below this; keeps the order of
    /// service in the gateway's queue instead of the engines' FCFS prefill queues.
    /// </summary>
    public int MaxPendingPrefillTokens { get; set; }

    /// <summary>Capacity rule (0: off): a worker whose KV blocks in use reach this fraction takes no new request (the gateway's <c>KvHighWatermark</c>).</summary>
    public double KvHighWatermark { get; set; }

    /// <summary>Value of <see cref="Capacity"/> for the simulator's own rule (engine queue depth per worker).</summary>
    public const string EngineCapacityRule = "engine";

    /// <summary>Value of <see cref="Capacity"/> for the gateway's rule (<see cref="SlotCapacity"/>).</summary>
    public const string SlotCapacityRule = "slots";

    /// <summary>
    /// Capacity rule of the dispatch: "engine" (default): a worker takes a request while its engine queue is below
    /// <see cref="MaxWaitingPerWorker"/> (and the other limits above); "slots": the gateway's rule
    /// (<see cref="SlotCapacity"/>): <see cref="MaxInFlightPerWorker"/> slots per worker, only the used ones while it is
    /// saturated (more than <see cref="MaxWaitingPerWorker"/> waiting, KV at <see cref="KvHighWatermark"/>, pending
    /// prefill at <see cref="MaxPendingPrefillTokens"/>).
    /// </summary>
    public string Capacity { get; set; } = EngineCapacityRule;

    /// <summary>Slots per worker under the "slots" capacity rule (the gateway's <c>MaxInFlightPerWorker</c>).</summary>
    public int MaxInFlightPerWorker { get; set; } = new SlotCapacity().MaxInFlightPerWorker;

    /// <summary>Tenant-tree weights ("org-a=2,org-a/k1=1").</summary>
    public string? TenantWeights { get; set; }

    /// <summary>Arrival-rate multipliers per tenant-tree node ("org-b=10").</summary>
    public string? TenantRates { get; set; }

    /// <summary>Speeds up (&gt;1) or slows down open-loop arrivals: start' = start / X.</summary>
    public double TimeScale { get; set; } = 1.0;

    /// <summary>Keep only the first N requests (0: all).</summary>
    public int MaxRequests { get; set; }

    /// <summary>Keep only the first N root sessions (0: all).</summary>
    public int MaxSessions { get; set; }

    /// <summary>Root sessions start as a Poisson process of this rate per second (0: at their recorded start).</summary>
    public double SessionRate { get; set; }

    /// <summary>
    /// Second trace replayed alongside the main one as non-agent traffic (one-shot requests of tenant <see cref="MixTenant"/>,
    /// sessions ignored), e.g. Azure conversation requests sharing the fleet with agent sessions; null: none.
    /// </summary>
    public string? MixTrace { get; set; }

    /// <summary>Format of <see cref="MixTrace"/>.</summary>
    public TraceFormat MixFormat { get; set; } = TraceFormat.Azure;

    /// <summary>Non-agent requests arrive as a Poisson process of this rate per second (0: at their recorded times).</summary>
    public double MixRate { get; set; }

    /// <summary>Keep only the first N non-agent requests (0: all).</summary>
    public int MixMaxRequests { get; set; }

    /// <summary>Tenant of the non-agent requests (its TTFT is reported per tenant).</summary>
    public const string MixTenant = "non-agent";

    /// <summary>Spread a tenant-less trace over N synthetic tenants (tenant-0 …), by session (or request) order.</summary>
    public int Tenants { get; set; }

    /// <summary>Share of root sessions per synthetic tenant ("tenant-0=10": tenant-0 gets 10 roots for every 1 of the others).</summary>
    public string? TenantMix { get; set; }

    /// <summary>Tenants whose requests are dropped after selection (the others' request set is unchanged): "tenant-0".</summary>
    public string? ExcludeTenants { get; set; }

    /// <summary>Locality pick on dispatch (hfair): prefer the fair-enough request with the best cache affinity for the worker with capacity.</summary>
    public bool Locality { get; set; } = true;

    /// <summary>A request the locality pick chose for a worker is sent there (<see cref="LocalityPick.SendToPickedWorker"/>); off: routing places it.</summary>
    public bool PickedWorker { get; set; }

    /// <summary>hfair's locality lag bound in cost units (<see cref="LocalityOptions.LagBound"/>).</summary>
    public double LagBound { get; set; } = LocalityOptions.Default.LagBound;

    /// <summary>
    /// Free dispatch slots (workers with capacity) held back for tenants within their in-flight share
    /// (<see cref="ReservedCapacity"/>; hfair only, 0 = off).
    /// </summary>
    public int Reserve { get; set; } = ReservedCapacity.DefaultReserve;

    /// <summary>A tenant holding this many times its weighted share of the in-flight requests may not take a reserved slot (<see cref="ReservedCapacity.OverShareFactor"/>).</summary>
    public double OverShareFactor { get; set; } = ReservedCapacity.DefaultOverShareFactor;

    /// <summary>
    /// Engine priority of a request dispatched while its tenant was not over its share (hfair; the gateway's
    /// <c>Gateway:Scheduling:UnderSharePriority</c>, sent as <c>x-request-priority</c>); 0 = no hint.
    /// </summary>
    public int UnderSharePriority { get; set; } = ReservedCapacity.DefaultUnderSharePriority;

    /// <summary>With no slot free and none lent, an under-share request is released beyond capacity (<see cref="ReservedCapacity.Overdraw"/>); off by default, as in one gateway.</summary>
    public bool Overdraw { get; set; }

    /// <summary>Engines give a step's prefill tokens only to its highest prefilling priority (<see cref="EngineOptions.ExclusivePriorityPrefill"/>).</summary>
    public bool ExclusivePriorityPrefill { get; set; } = true;

    /// <summary>
    /// Engines give lower priorities at most this many prefill tokens per step while urgent work was submitted recently
    /// (<see cref="EngineOptions.LowPriorityPrefillTokens"/>); 0 = off.
    /// </summary>
    public int LowPriorityPrefillTokens { get; set; } = EngineOptions.DefaultLowPriorityPrefillTokens;

    /// <summary>Engines prefill one urgent (priority above 0) prompt per step (<see cref="EngineOptions.SerialUrgentPrefill"/>).</summary>
    public bool SerialUrgentPrefill { get; set; } = true;

    /// <summary>Cache salt scope: "tenant" (full path), "org" (first path segment) or "none".</summary>
    public string CacheSalt { get; set; } = "tenant";

    /// <summary>Relay engine KV events to routing policies that keep a precise index (kv-aware).</summary>
    public bool KvEvents { get; set; } = true;

    /// <summary>Random seed (Poisson starts, policy tie-breaks).</summary>
    public int Seed { get; set; } = 1;

    /// <summary>
    /// Seeds to repeat every combination with (each its own workload: session starts, mix arrivals, tie-breaks); empty =
    /// <see cref="Seed"/> only. With several, result.json also gets per-combination aggregates across the seeds.
    /// </summary>
    public List<int> Seeds { get; set; } = [];

    /// <summary>The seeds this scenario runs.</summary>
    public IReadOnlyList<int> EffectiveSeeds => Seeds.Count > 0 ? Seeds : [Seed];

    /// <summary>A copy of this scenario with <see cref="Seed"/> = <paramref name="seed"/> (lists shared, read only).</summary>
    public Scenario WithSeed(int seed)
    {
        var copy = (Scenario)MemberwiseClone();
        copy.Seed = seed;
        copy.Seeds = [];
        return copy;
    }

    /// <summary>Parses "1,2,3" or "1-5" (or a mix: "1-3,7").</summary>
    public static List<int> ParseSeeds(string text)
    {
        var seeds = new List<int>();
        foreach (var part in SplitList(text))
        {
            int dash = part.IndexOf('-', 1);
            if (dash > 0)
            {
                int from = Int(part[..dash]);
                int to = Int(part[(dash + 1)..]);
                if (to < from || to - from >= 1000)
                {
                    throw new FormatException($"bad seed range '{part}' (from <= to, at most 1000 seeds)");
                }

                for (int i = from; i <= to; i++)
                {
                    seeds.Add(i);
                }
            }
            else
            {
                seeds.Add(Int(part));
            }
        }

        return seeds.Distinct().ToList();

        static int Int(string t) => int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v : throw new FormatException($"'{t}' is not an integer seed");
    }

    /// <summary>Routing policies to compare.</summary>
    public List<string> Routing { get; set; } = [RoundRobinPolicy.PolicyName];

    /// <summary>Scheduling policies to compare.</summary>
    public List<string> Scheduling { get; set; } = [FcfsScheduler.PolicyName];

    /// <summary>Retention policies to compare: off, fixed:SECONDS, predictive (Gateway.Core.Agents.RetentionPolicies).</summary>
    public List<string> Retention { get; set; } = ["off"];

    /// <summary>Predictive retention: GPU-seconds one second of holding a whole worker's pool is worth (RetentionOptions.MemoryCostWeight).</summary>
    public double RetentionCostWeight { get; set; } = 1.0;

    /// <summary>Predictive retention: share of each worker's blocks its pins may hold (RetentionOptions.PinBudgetFraction).</summary>
    public double RetentionPinBudget { get; set; } = 0.4;

    /// <summary>Predictive retention: renewals of a gap's pin by the conditional gap distribution, 0 = none (RetentionOptions.MaxRenewals).</summary>
    public int RetentionRenewals { get; set; } = new Gateway.Core.Agents.RetentionOptions().MaxRenewals;

    /// <summary>
    /// Predictive retention: pricing by each engine's measured eviction age (RetentionOptions.EvictionAge): "off" (default),
    /// "cover" or "shift".
    /// </summary>
    public string RetentionEvictionAge { get; set; } = "off";

    /// <summary>Predictive retention: "on" (default) or "off", the guard on HBM pins (RetentionOptions.PinGuard).</summary>
    public string RetentionGuard { get; set; } = "on";

    /// <summary>Predictive retention: "off" (default) or "on", HBM pins on workers without a host tier (RetentionOptions.HbmPins).</summary>
    public string RetentionHbmPins { get; set; } = "off";

    /// <summary>
    /// The name a retention option's runs carry in the results: the option, and for <c>predictive</c> with HBM pins
    /// <c>predictive+hbm-pins</c> (<c>predictive+hbm-pins-unguarded</c> with the guard off), so runs of invocations with
    /// different knobs tabulate side by side.
    /// </summary>
    public string RetentionLabel(string retention) =>
        retention != Gateway.Core.Agents.PredictiveRetentionPolicy.PolicyName || RetentionHbmPins != "on" ? retention
        : RetentionGuard == "off" ? retention + "+hbm-pins-unguarded" : retention + "+hbm-pins";

    /// <summary>
    /// Program-level ordering of resumed turns (Gateway.Core.Agents.ResumedTurnPriority): "off" (default); "on": a turn
    /// closing a tool gap gets the gateway-queue credit and the engine priority, as the gateway does with
    /// Gateway:Agents:ResumedTurnPriority; "pinned": only when the retention policy's pin still covers it (ResumedPinnedOnly).
    /// </summary>
    public string ProgramPriority { get; set; } = "off";

    /// <summary>Values <see cref="ProgramPriority"/> accepts.</summary>
    public static IReadOnlyList<string> ProgramPriorityModes { get; } = ["off", "on", "pinned"];

    /// <summary>
    /// Also write every request's outcome and TTFT breakdown (<see cref="Simulation.TtftBreakdown"/>) to
    /// <c>&lt;result&gt;.requests.jsonl</c> next to result.json, one line per request and run.
    /// </summary>
    public bool RequestsOut { get; set; }

    /// <summary>Where result.json goes (summary .md and .svg next to it).</summary>
    public string Out { get; set; } = "result.json";

    /// <summary>Runs executed at once (each combination is independent).</summary>
    public int Parallelism { get; set; } = Math.Max(1, Environment.ProcessorCount);
}
