using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Routing;

/// <summary>What a routing policy may need from its host when it is created by name.</summary>
public sealed class RoutingPolicyContext
{
    /// <summary>Clock (virtual in the simulator).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Seed for the policy's random tie-breaks.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Engine block size the request hashes are cut with.</summary>
    public int BlockSize { get; init; } = Llm.Prompt.Hashing.BlockHasher.DefaultBlockSize;

    /// <summary>Knobs of the <c>kv-aware</c> policy (null: documented defaults).</summary>
    public KvAwareOptions? KvAware { get; init; }
}

/// <summary>Creates routing policies by the names used in configuration and on the simulator's command line.</summary>
public static class RoutingPolicies
{
    /// <summary>Every policy name <see cref="Create"/> accepts (each also as <c>name:knob=value+…</c> where it has knobs).</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        RoundRobinPolicy.PolicyName,
        LeastLoadPolicy.PolicyName,
        KvAwarePolicy.PolicyName,
        Baselines.SglangCacheAwarePolicy.PolicyName,
        Baselines.SglangCacheAwarePolicy.V0PolicyName,
        Baselines.DynamoKvPolicy.PolicyName,
        Baselines.DynamoKvPolicy.ApproxPolicyName,
        Baselines.LlmdPolicy.PolicyName,
        Baselines.LlmdPolicy.PrecisePolicyName,
    ];

    /// <summary>True when <see cref="Create"/> accepts <paramref name="name"/> (a listed name, or <c>name:knob=value+…</c> with valid knobs).</summary>
    public static bool IsKnown(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        try
        {
            return Build(name, new RoutingPolicyContext()) is not null;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    /// <summary>
    /// Creates a fresh policy (with its own state) named <paramref name="name"/>. <c>name:knob=value+…</c> creates that
    /// policy with knobs overridden (<see cref="KvAwareOptions.Parse"/> for <c>kv-aware</c>; the baselines' options
    /// records for theirs), for side-by-side tuning runs.
    /// </summary>
    /// <exception cref="ArgumentException">Unknown name, or a bad knob.</exception>
    public static IRoutingPolicy Create(string name, RoutingPolicyContext context)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(context);
        return Build(name, context)
            ?? throw new ArgumentException($"unknown routing policy '{name}'; known: {string.Join(", ", Names)}", nameof(name));
    }

    // Parses "base[:overrides]" and creates the policy; null when the name is unknown (bad knobs throw).
    private static IRoutingPolicy? Build(string name, RoutingPolicyContext c)
    {
        int colon = name.IndexOf(':', StringComparison.Ordinal);
        string baseName = colon < 0 ? name : name[..colon];
        string? knobs = colon < 0 ? null : name[(colon + 1)..];
        switch (baseName)
        {
            case RoundRobinPolicy.PolicyName when knobs is null:
                return new RoundRobinPolicy();
            case LeastLoadPolicy.PolicyName when knobs is null:
                return new LeastLoadPolicy(new Random(c.Seed));
            case KvAwarePolicy.PolicyName:
                var kv = knobs is null ? c.KvAware : KvAwareOptions.Parse(knobs, c.KvAware);
                return new KvAwarePolicy(c.Time, new Random(c.Seed), kv);
            case Baselines.SglangCacheAwarePolicy.PolicyName:
            case Baselines.SglangCacheAwarePolicy.V0PolicyName:
                var preset = baseName == Baselines.SglangCacheAwarePolicy.PolicyName ? Baselines.SglangCacheAwareOptions.Current : Baselines.SglangCacheAwareOptions.V0;
                var so = knobs is null ? preset : Baselines.SglangCacheAwareOptions.Parse(knobs, preset, baseName);
                return new Baselines.SglangCacheAwarePolicy(c.Time, so, name);
            case Baselines.DynamoKvPolicy.PolicyName:
            case Baselines.DynamoKvPolicy.ApproxPolicyName:
                var dp = baseName == Baselines.DynamoKvPolicy.PolicyName ? Baselines.DynamoKvOptions.Events : Baselines.DynamoKvOptions.Approximate;
                var dyn = knobs is null ? dp : Baselines.DynamoKvOptions.Parse(knobs, dp, baseName);
                return new Baselines.DynamoKvPolicy(c.Time, dyn, name, new Random(c.Seed));
            case Baselines.LlmdPolicy.PolicyName:
            case Baselines.LlmdPolicy.PrecisePolicyName:
                var lp = baseName == Baselines.LlmdPolicy.PolicyName ? Baselines.LlmdOptions.Default : Baselines.LlmdOptions.PreciseProfile;
                var lo = knobs is null ? lp : Baselines.LlmdOptions.Parse(knobs, lp, baseName);
                return new Baselines.LlmdPolicy(c.Time, new Random(c.Seed), lo, name);
            default:
                return null;
        }
    }
}
