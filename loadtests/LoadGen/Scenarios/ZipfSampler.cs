namespace LoadGen.Scenarios;

/// <summary>
/// Draws ranks 0..n−1 with P(k) ∝ 1/(k+1)^s (Zipf): rank 0 is the most popular. Inverse-CDF over a precomputed
/// table (binary search), so a draw is O(log n) and exact for any s ≥ 0 (s = 0 is uniform).
/// </summary>
public sealed class ZipfSampler
{
    private readonly double[] _cdf;

    /// <summary>Sampler over <paramref name="n"/> ranks with exponent <paramref name="s"/>.</summary>
    public ZipfSampler(int n, double s)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(s);
        _cdf = new double[n];
        double sum = 0;
        for (int k = 0; k < n; k++)
        {
            sum += 1.0 / Math.Pow(k + 1, s);
            _cdf[k] = sum;
        }

        for (int k = 0; k < n; k++)
        {
            _cdf[k] /= sum;
        }

        _cdf[n - 1] = 1.0;
    }

    /// <summary>Number of ranks.</summary>
    public int Count => _cdf.Length;

    /// <summary>Probability of rank <paramref name="k"/>.</summary>
    public double Probability(int k) => k == 0 ? _cdf[0] : _cdf[k] - _cdf[k - 1];

    /// <summary>A rank drawn with <paramref name="rng"/>.</summary>
    public int Sample(Random rng)
    {
        ArgumentNullException.ThrowIfNull(rng);
        double u = rng.NextDouble();
        int i = Array.BinarySearch(_cdf, u);
        if (i < 0)
        {
            i = ~i;
        }

        return Math.Min(i, _cdf.Length - 1);
    }
}
