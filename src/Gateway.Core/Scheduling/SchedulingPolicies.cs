namespace Gateway.Core.Scheduling;

/// <summary>What a scheduler may need from its host when it is created by name.</summary>
public sealed class SchedulingPolicyContext
{
    /// <summary>Clock (virtual in the simulator).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Weight of each tenant-tree node by path ("org-a" = 2, "org-a/k1" = 1); unnamed nodes weigh 1.</summary>
    public IReadOnlyDictionary<string, double> Weights { get; init; } = new Dictionary<string, double>();
}

/// <summary>Creates schedulers by the names used in configuration and on the simulator's command line.</summary>
public static class SchedulingPolicies
{
    /// <summary>Every policy name <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } = [FcfsScheduler.PolicyName];

    /// <summary>Creates a fresh scheduler named <paramref name="name"/>.</summary>
    public static IRequestScheduler Create(string name, SchedulingPolicyContext context) => name switch
    {
        FcfsScheduler.PolicyName => new FcfsScheduler(),
        _ => throw new ArgumentException($"unknown scheduling policy '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
    };
}
