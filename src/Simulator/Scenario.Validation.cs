using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Simulator.Traces;
using Worker.Engine;

namespace Simulator;

/// <summary>Validation of a <see cref="Scenario"/>: every problem is reported at once, named by its flag.</summary>
public sealed partial class Scenario
{
    /// <summary>Checks every field and returns all problems found (empty when valid).</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(Trace))
        {
            errors.Add("--trace is required");
        }
        else if (!File.Exists(Trace) && !Directory.Exists(Trace))
        {
            errors.Add($"trace '{Trace}' not found");
        }
        else if (Directory.Exists(Trace) && Format != TraceFormat.Weka)
        {
            errors.Add("a folder trace is only supported for --format weka");
        }

        if (Workers < 1 || Workers > 1024)
        {
            errors.Add("--workers must be 1..1024");
        }

        if (!ModelProfiles.TryGet(Profile, out _))
        {
            errors.Add($"unknown --profile '{Profile}'; known: {string.Join(", ", ModelProfiles.Names)}");
        }

        if (HostKvBlocks < -1)
        {
            errors.Add("--host-kv-blocks must be >= 0, or -1 for twice the HBM pool");
        }

        if (KvBlocks < 0)
        {
            errors.Add("--kv-blocks must be >= 0");
        }

        if (!(RetentionCostWeight >= 0) || double.IsInfinity(RetentionCostWeight) || !(RetentionPinBudget > 0 && RetentionPinBudget <= 1))
        {
            errors.Add("--retention-cost must be >= 0 and --retention-budget 0..1 (exclusive of 0)");
        }

        if (RetentionRenewals is < 0 or > 1000)
        {
            errors.Add("--retention-renewals must be 0..1000");
        }

        if (!Gateway.Core.Agents.RetentionPolicies.TryParseEvictionAge(RetentionEvictionAge, out _))
        {
            errors.Add("--retention-eviction-age must be off, cover or shift");
        }

        if (RetentionGuard is not ("on" or "off"))
        {
            errors.Add("--retention-guard must be on or off");
        }

        if (RetentionHbmPins is not ("on" or "off"))
        {
            errors.Add("--retention-hbm-pins must be on or off");
        }

        if (!ProgramPriorityModes.Contains(ProgramPriority))
        {
            errors.Add("--program-priority must be off, on or pinned");
        }

        if (!(MaxPinnedFraction >= 0 && MaxPinnedFraction <= 1))
        {
            errors.Add("--max-pinned-fraction must be 0..1");
        }

        if (BlockSize < 1 || BlockSize > 1024)
        {
            errors.Add("--block-size must be 1..1024");
        }

        if (Capacity is not (EngineCapacityRule or SlotCapacityRule))
        {
            errors.Add($"--capacity must be {EngineCapacityRule} or {SlotCapacityRule}");
        }

        if (MaxInFlightPerWorker < 1)
        {
            errors.Add("--max-in-flight must be at least 1");
        }

        if (KvHighWatermark < 0 || KvHighWatermark > 1 || double.IsNaN(KvHighWatermark))
        {
            errors.Add("--kv-high-watermark must be in [0, 1]");
        }

        if (LowPriorityPrefillTokens < 0)
        {
            errors.Add("--low-priority-prefill must be >= 0");
        }

        if (LongPrefillTokenThreshold < 0)
        {
            errors.Add("--long-prefill-threshold must be >= 0");
        }

        if (MaxPendingPrefillTokens < 0)
        {
            errors.Add("--max-pending-prefill must be >= 0");
        }

        if (MaxBatchTokens < 1 || MaxRunningSequences < 1 || MaxWaitingPerWorker < 1 || MaxModelLength < 2)
        {
            errors.Add("--max-batch-tokens, --max-running, --max-waiting must be >= 1");
        }

        if (!(TimeScale > 0) || double.IsInfinity(TimeScale))
        {
            errors.Add("--time-scale must be > 0");
        }

        if (MaxRequests < 0 || MaxSessions < 0 || Tenants < 0)
        {
            errors.Add("--max-requests, --max-sessions and --tenants must be >= 0");
        }

        if (SessionRate < 0 || double.IsNaN(SessionRate) || double.IsInfinity(SessionRate))
        {
            errors.Add("--session-rate must be >= 0");
        }

        if (MixTrace is not null && !File.Exists(MixTrace))
        {
            errors.Add($"--mix-trace '{MixTrace}' not found (a file)");
        }

        if (MixRate < 0 || double.IsNaN(MixRate) || double.IsInfinity(MixRate) || MixMaxRequests < 0)
        {
            errors.Add("--mix-rate and --mix-max-requests must be >= 0");
        }

        if (LagBound < 0 || double.IsNaN(LagBound) || double.IsInfinity(LagBound))
        {
            errors.Add("--lag-bound must be a finite number >= 0");
        }

        if (Reserve < 0)
        {
            errors.Add("--reserve must be >= 0");
        }

        if (UnderSharePriority is < 0 or > 1000)
        {
            errors.Add("--under-share-priority must be 0..1000");
        }

        if (!(OverShareFactor > 0) || double.IsInfinity(OverShareFactor))
        {
            errors.Add("--over-share-factor must be a finite number > 0");
        }

        try
        {
            SchedulingPolicyContext.ParseWeights(TenantMix);
        }
        catch (FormatException e)
        {
            errors.Add(e.Message.Replace("tenant weights", "tenant mix", StringComparison.Ordinal));
        }

        if (CacheSalt is not ("tenant" or "org" or "none"))
        {
            errors.Add("--cache-salt must be tenant, org or none");
        }

        try
        {
            SchedulingPolicyContext.ParseWeights(TenantWeights);
        }
        catch (FormatException e)
        {
            errors.Add(e.Message);
        }

        try
        {
            SchedulingPolicyContext.ParseWeights(TenantRates);
        }
        catch (FormatException e)
        {
            errors.Add(e.Message.Replace("tenant weights", "tenant rates", StringComparison.Ordinal));
        }

        CheckNames(errors, "--routing", Routing, RoutingPolicies.Names, RoutingPolicies.IsKnown);
        CheckNames(errors, "--scheduling", Scheduling, SchedulingPolicies.Names);
        CheckNames(errors, "--retention", Retention, Simulation.RetentionPlanners.Names, Simulation.RetentionPlanners.IsValid);
        if (Parallelism < 1)
        {
            errors.Add("--parallel must be >= 1");
        }

        return errors;
    }

    private static void CheckNames(List<string> errors, string flag, List<string> given, IReadOnlyList<string> known, Func<string, bool>? valid = null)
    {
        if (given.Count == 0)
        {
            errors.Add($"{flag} needs at least one name");
        }

        foreach (var g in given)
        {
            if (!known.Contains(g) && !(valid?.Invoke(g) ?? false))
            {
                errors.Add($"unknown {flag} '{g}'; known: {string.Join(", ", known)}");
            }
        }

        if (given.Distinct(StringComparer.Ordinal).Count() != given.Count)
        {
            errors.Add($"{flag} lists a name twice");
        }
    }

    /// <summary>Splits "a,b" into names.</summary>
    public static List<string> SplitList(string value) =>
        [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
}
