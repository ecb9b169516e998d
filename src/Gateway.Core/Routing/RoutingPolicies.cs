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
    public int BlockSize { get; init; } = Hashing.BlockHasher.DefaultBlockSize;

    /// <summary>Knobs of the <c>kv-aware</c> policy (null: documented defaults).</summary>
    public KvAwareOptions? KvAware { get; init; }
}

/// <summary>Creates routing policies by the names used in configuration and on the simulator's command line.</summary>
public static class RoutingPolicies
{
    /// <summary>Every policy name <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        RoundRobinPolicy.PolicyName,
        LeastLoadPolicy.PolicyName,
        KvAwarePolicy.PolicyName,
        Baselines.SglangCacheAwarePolicy.PolicyName,
        Baselines.DynamoKvPolicy.PolicyName,
    ];

    /// <summary>True when <see cref="Create"/> accepts <paramref name="name"/> (a listed name, or <c>kv-aware:knob=value+…</c>).</summary>
    public static bool IsKnown(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.StartsWith(KvAwarePolicy.PolicyName + ":", StringComparison.Ordinal))
        {
            try
            {
                KvAwareOptions.Parse(name[(KvAwarePolicy.PolicyName.Length + 1)..]);
                return true;
            }
            catch (ArgumentException)
            {
                return false;
            }
        }

        foreach (string n in Names)
        {
            if (n == name)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Creates a fresh policy (with its own state) named <paramref name="name"/>. <c>kv-aware:knob=value+…</c> creates
    /// kv-aware with those knobs overridden (see <see cref="KvAwareOptions.Parse"/>), for side-by-side tuning runs.
    /// </summary>
    public static IRoutingPolicy Create(string name, RoutingPolicyContext context) => name switch
    {
        _ when name.StartsWith(KvAwarePolicy.PolicyName + ":", StringComparison.Ordinal) =>
            new KvAwarePolicy(context.Time, new Random(context.Seed), KvAwareOptions.Parse(name[(KvAwarePolicy.PolicyName.Length + 1)..], context.KvAware)),
        RoundRobinPolicy.PolicyName => new RoundRobinPolicy(),
        LeastLoadPolicy.PolicyName => new LeastLoadPolicy(new Random(context.Seed)),
        KvAwarePolicy.PolicyName => new KvAwarePolicy(context.Time, new Random(context.Seed), context.KvAware),
        Baselines.SglangCacheAwarePolicy.PolicyName => new Baselines.SglangCacheAwarePolicy(context.Time),
        Baselines.DynamoKvPolicy.PolicyName => new Baselines.DynamoKvPolicy(context.Time),
        _ => throw new ArgumentException($"unknown routing policy '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
    };
}
