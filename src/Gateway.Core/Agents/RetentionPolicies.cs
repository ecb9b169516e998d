using System.Globalization;

namespace Gateway.Core.Agents;

/// <summary>Retention policies by name: <c>off</c>, <c>fixed:SECONDS</c>, <c>predictive</c>.</summary>
public static class RetentionPolicies
{
    /// <summary>Example names (fixed takes any positive number of seconds).</summary>
    public static IReadOnlyList<string> Names { get; } = [OffRetentionPolicy.PolicyName, "fixed:2", "fixed:30", PredictiveRetentionPolicy.PolicyName];

    /// <summary>True if <paramref name="name"/> is a valid policy name.</summary>
    public static bool IsValid(string? name) => name is OffRetentionPolicy.PolicyName or PredictiveRetentionPolicy.PolicyName || TryParseFixed(name, out _);

    /// <summary>Creates a fresh policy.</summary>
    public static IRetentionPolicy Create(string name, TimeProvider time, RetentionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        if (name == OffRetentionPolicy.PolicyName)
        {
            return new OffRetentionPolicy(time, options?.MaxOpenGaps ?? new RetentionOptions().MaxOpenGaps, options?.MaxSessionIdle, options?.MaxSingleTurnIdle);
        }

        if (name == PredictiveRetentionPolicy.PolicyName)
        {
            return new PredictiveRetentionPolicy(time, options);
        }

        if (TryParseFixed(name, out double seconds))
        {
            return new FixedRetentionPolicy(time, seconds, options?.MaxOpenGaps ?? new RetentionOptions().MaxOpenGaps, options?.MaxSessionIdle, options?.MaxSingleTurnIdle);
        }

        throw new ArgumentException($"unknown retention policy '{name}'; known: off, fixed:SECONDS (e.g. fixed:2), predictive", nameof(name));
    }

    /// <summary>Parses an eviction-age mode name: <c>off</c>, <c>cover</c>, <c>shift</c> (case-insensitive).</summary>
    public static bool TryParseEvictionAge(string? name, out EvictionAgeMode mode)
    {
        mode = EvictionAgeMode.Off;
        switch (name?.Trim().ToLowerInvariant())
        {
            case "off": mode = EvictionAgeMode.Off; return true;
            case "cover": mode = EvictionAgeMode.Cover; return true;
            case "shift": mode = EvictionAgeMode.Shift; return true;
            default: return false;
        }
    }

    private static bool TryParseFixed(string? name, out double seconds)
    {
        seconds = 0;
        return name is not null && name.StartsWith(FixedRetentionPolicy.Prefix, StringComparison.Ordinal) &&
               double.TryParse(name.AsSpan(FixedRetentionPolicy.Prefix.Length), NumberStyles.Float, CultureInfo.InvariantCulture, out seconds) &&
               seconds > 0 && seconds <= 86_400;
    }
}
