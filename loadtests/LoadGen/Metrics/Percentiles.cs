using HdrHistogram;

namespace LoadGen.Metrics;

/// <summary>
/// Distribution summary of one latency metric (milliseconds). Percentiles come from an HdrHistogram of the values in
/// microseconds (1 µs to 1 hour, <see cref="SignificantDigits"/> significant digits): a reported percentile is the
/// highest value of the histogram bucket that holds the exact (nearest-rank) percentile, so it is at most
/// <see cref="RelativePrecision"/> above it (and values under 1 µs count as 1 µs). Mean and max are exact.
/// </summary>
public sealed record LatencySummary(int Count, double Mean, double P50, double P90, double P99, double Max)
{
    /// <summary>Significant decimal digits the histogram keeps.</summary>
    public const int SignificantDigits = 3;

    /// <summary>Largest relative error of a reported percentile (10^-<see cref="SignificantDigits"/>).</summary>
    public const double RelativePrecision = 0.001;

    /// <summary>How reports state the percentiles' precision.</summary>
    public const string PrecisionNote = "percentiles from HdrHistogram 2.5.0 (microseconds, 3 significant digits: each within 0.1% above the exact nearest-rank value); mean and max exact";

    private const long HighestMicros = 3_600_000_000; // one hour

    /// <summary>Summary of <paramref name="values"/>; all zero when empty.</summary>
    public static LatencySummary Of(IReadOnlyCollection<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0)
        {
            return new LatencySummary(0, 0, 0, 0, 0, 0);
        }

        var histogram = new LongHistogram(1, HighestMicros, SignificantDigits);
        double sum = 0;
        double max = double.MinValue;
        foreach (double v in values)
        {
            sum += v;
            max = Math.Max(max, v);
            histogram.RecordValue(Math.Clamp((long)Math.Round(v * 1000), 1, HighestMicros));
        }

        double At(double p) => histogram.GetValueAtPercentile(p) / 1000.0;
        return new LatencySummary(values.Count, sum / values.Count, At(50), At(90), At(99), max);
    }
}
