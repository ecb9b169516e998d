using System.Globalization;

namespace Gateway.Core.Scheduling;

/// <summary>What a scheduler may need from its host when it is created by name.</summary>
public sealed class SchedulingPolicyContext
{
    /// <summary>Clock (virtual in the simulator).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Weight of each tenant-tree node by path ("org-a" = 2, "org-a/k1" = 1); unnamed nodes weigh 1.</summary>
    public IReadOnlyDictionary<string, double> Weights { get; init; } = new Dictionary<string, double>();

    /// <summary>Cost of service (w_in, w_out); defaults 1 and 2.</summary>
    public CostModel Cost { get; init; } = CostModel.Default;

    /// <summary>Locality knobs for <c>hfair</c>'s <see cref="IRequestScheduler.Dequeue(Func{QueuedRequest, double})"/>.</summary>
    public LocalityOptions Locality { get; init; } = LocalityOptions.Default;

    /// <summary>Weight lookup over <see cref="Weights"/> (1 for unnamed nodes).</summary>
    public Func<string, double> WeightOf => path => Weights.TryGetValue(path, out var w) && w > 0 ? w : 1.0;

    /// <summary>Parses "org-a=2,org-a/k1=1" (comma or semicolon separated; weights must be positive).</summary>
    public static IReadOnlyDictionary<string, double> ParseWeights(string? spec)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        if (string.IsNullOrWhiteSpace(spec))
        {
            return result;
        }

        var errors = new List<string>();
        foreach (var part in spec.Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var eq = part.LastIndexOf('=');
            if (eq <= 0 || !double.TryParse(part.AsSpan(eq + 1), NumberStyles.Float, CultureInfo.InvariantCulture, out var w) || !(w > 0) || double.IsInfinity(w))
            {
                errors.Add($"'{part}' is not PATH=POSITIVE_NUMBER");
                continue;
            }

            result[part[..eq].Trim().Trim('/')] = w;
        }

        if (errors.Count > 0)
        {
            throw new FormatException("invalid tenant weights: " + string.Join("; ", errors));
        }

        return result;
    }
}

/// <summary>Creates schedulers by the names used in configuration and on the simulator's command line.</summary>
public static class SchedulingPolicies
{
    /// <summary>Every policy name <see cref="Create"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } =
        [FcfsScheduler.PolicyName, VtcScheduler.PolicyName, HierarchicalFairScheduler.PolicyName];

    /// <summary>Creates a fresh scheduler named <paramref name="name"/>.</summary>
    public static IRequestScheduler Create(string name, SchedulingPolicyContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return name switch
        {
            FcfsScheduler.PolicyName => new FcfsScheduler(),
            VtcScheduler.PolicyName => new VtcScheduler(context.WeightOf, context.Cost),
            HierarchicalFairScheduler.PolicyName => new HierarchicalFairScheduler(context.WeightOf, context.Cost, context.Locality),
            _ => throw new ArgumentException($"unknown scheduling policy '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
        };
    }
}
