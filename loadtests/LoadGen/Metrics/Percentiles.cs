namespace LoadGen.Metrics;

/// <summary>Distribution summary of one latency metric (milliseconds).</summary>
public sealed record LatencySummary(int Count, double Mean, double P50, double P90, double P99, double Max)
{
    /// <summary>Summary of <paramref name="values"/> (sorted in place); all zero when empty.</summary>
    public static LatencySummary Of(List<double> values)
    {
        if (values.Count == 0)
        {
            return new LatencySummary(0, 0, 0, 0, 0, 0);
        }

        values.Sort();
        double sum = 0;
        foreach (double v in values)
        {
            sum += v;
        }

        return new LatencySummary(values.Count, sum / values.Count, Percentile(values, 50), Percentile(values, 90), Percentile(values, 99), values[^1]);
    }

    /// <summary>Linear-interpolated percentile of sorted values (numpy's default, as vLLM's bench reports).</summary>
    public static double Percentile(IReadOnlyList<double> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return 0;
        }

        double rank = p / 100.0 * (sorted.Count - 1);
        int lo = (int)Math.Floor(rank);
        int hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
    }
}
