using System.Globalization;
using System.Text;

namespace Gateway.Telemetry;

/// <summary>
/// Prometheus text exposition format 0.0.4 helpers: metric and label name sanitising, label value and help
/// escaping, number formatting, and the OpenTelemetry-to-Prometheus unit suffix rules.
/// </summary>
public static class PrometheusText
{
    /// <summary>Content type of the exposition format written by <see cref="PrometheusExporter"/>.</summary>
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>Replaces every character outside [a-zA-Z0-9_:] by '_' and prefixes a leading digit with '_'.</summary>
    public static string SanitizeMetricName(string name)
    {
        var sb = new StringBuilder(name.Length + 1);
        foreach (char c in name)
        {
            bool ok = c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or ':';
            char o = ok ? c : '_';
            if (o == '_' && sb.Length > 0 && sb[^1] == '_') continue; // collapse "a.-b" -> "a_b"
            sb.Append(o);
        }
        if (sb.Length == 0 || char.IsAsciiDigit(sb[0])) sb.Insert(0, '_');
        return sb.ToString();
    }

    /// <summary>
    /// Prometheus name of an instrument: sanitised name + unit suffix (+ <c>_total</c> for counters).
    /// Units: s → seconds; ms/us/ns → seconds with values scaled to seconds; By → bytes; 1 → ratio (gauges only);
    /// annotations in braces such as {request} → no suffix; anything else → sanitised unit. Gauges ending in _count, _sum
    /// or _bucket get <c>_value</c> appended (those suffixes are reserved for histogram series).
    /// </summary>
    public static string MetricName(string instrumentName, string? unit, PrometheusMetricType type, out double scale)
    {
        string name = SanitizeMetricName(instrumentName);
        scale = 1;
        string suffix = "";
        switch (unit)
        {
            case null or "": break;
            case "s": suffix = "seconds"; break;
            case "ms": suffix = "seconds"; scale = 1e-3; break;
            case "us" or "μs": suffix = "seconds"; scale = 1e-6; break;
            case "ns": suffix = "seconds"; scale = 1e-9; break;
            case "By": suffix = "bytes"; break;
            case "%": suffix = "percent"; break;
            case "1": suffix = type == PrometheusMetricType.Gauge ? "ratio" : ""; break;
            default:
                if (unit[0] == '{') break; // UCUM annotation: a count of something, no unit
                suffix = SanitizeMetricName(unit).Trim('_');
                break;
        }
        bool counter = type == PrometheusMetricType.Counter;
        if (counter && name.EndsWith("_total", StringComparison.Ordinal)) name = name[..^"_total".Length];
        if (suffix.Length > 0 && !name.EndsWith("_" + suffix, StringComparison.Ordinal)) name += "_" + suffix;
        if (counter) name += "_total";
        else if (type == PrometheusMetricType.Gauge && (name.EndsWith("_count", StringComparison.Ordinal)
                 || name.EndsWith("_sum", StringComparison.Ordinal) || name.EndsWith("_bucket", StringComparison.Ordinal)))
            name += "_value"; // those suffixes belong to histogram series (promtool lint); dotnet.timer.count -> dotnet_timer_count_value
        return name;
    }

    /// <summary>Appends a label name: invalid characters become '_', a leading digit or "__" gets a prefix.</summary>
    public static void AppendLabelName(StringBuilder sb, string name)
    {
        if (name.Length == 0 || char.IsAsciiDigit(name[0]) || name.StartsWith("__", StringComparison.Ordinal)) sb.Append("tag_");
        foreach (char c in name)
            sb.Append(c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' ? c : '_');
    }

    /// <summary>Appends a label value escaped for the text format: backslash, double quote and line feed.</summary>
    public static void AppendLabelValue(StringBuilder sb, ReadOnlySpan<char> value)
    {
        foreach (char c in value)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '"': sb.Append("\\\""); break;
                case '\n': sb.Append("\\n"); break;
                default: sb.Append(c); break;
            }
        }
    }

    /// <summary>Escapes a HELP text: backslash and line feed.</summary>
    public static string EscapeHelp(string help) =>
        help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)
            .Replace("\r", "", StringComparison.Ordinal);

    /// <summary>Formats a sample value or bucket bound the way Prometheus parses floats (+Inf, -Inf, NaN).</summary>
    public static string FormatDouble(double v)
    {
        if (double.IsPositiveInfinity(v)) return "+Inf";
        if (double.IsNegativeInfinity(v)) return "-Inf";
        if (double.IsNaN(v)) return "NaN";
        return v.ToString("R", CultureInfo.InvariantCulture);
    }
}

/// <summary>Prometheus metric family type.</summary>
public enum PrometheusMetricType
{
    /// <summary>Monotonic total (<c>_total</c> suffix).</summary>
    Counter,
    /// <summary>Value that goes up and down.</summary>
    Gauge,
    /// <summary>Cumulative buckets, sum and count.</summary>
    Histogram,
}
