using System.Globalization;

namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Parses knob overrides written as <c>key=value</c> pairs joined by <c>+</c> (the form <c>kv-aware:…</c> uses), for the
/// baseline presets: <c>sglang-cache-aware:cache_threshold=0.5+balance_abs_threshold=32</c>. Every unknown key, bad
/// number and invalid result is reported at once.
/// </summary>
public static class BaselineKnobs
{
    /// <summary>
    /// Applies <paramref name="overrides"/> to <paramref name="start"/> through <paramref name="set"/> (which returns null
    /// for an unknown key), then checks the result with <paramref name="validate"/>.
    /// </summary>
    /// <exception cref="ArgumentException">Any key unknown, value not a number, or result invalid.</exception>
    public static T Apply<T>(string policy, string overrides, T start, Func<T, string, double, T?> set, Func<T, IReadOnlyList<string>> validate)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(overrides);
        var o = start;
        var errors = new List<string>();
        foreach (string pair in overrides.Split('+', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            string key = eq < 0 ? pair : pair[..eq];
            if (eq < 0 || !double.TryParse(pair[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !double.IsFinite(v))
            {
                errors.Add($"'{pair}': expected key=number");
                continue;
            }

            if (set(o, key, v) is { } next)
            {
                o = next;
            }
            else
            {
                errors.Add($"unknown {policy} knob '{key}'");
            }
        }

        errors.AddRange(validate(o));
        return errors.Count == 0 ? o : throw new ArgumentException($"{policy} options: " + string.Join("; ", errors), nameof(overrides));
    }
}
