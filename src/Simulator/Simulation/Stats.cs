namespace Simulator.Simulation;

/// <summary>Percentiles and fairness indexes used in reports.</summary>
public static class Stats
{
    /// <summary>
    /// Percentile <paramref name="p"/> (0..100) by linear interpolation between closest ranks (numpy's default):
    /// rank = p/100 × (n − 1). Sorts <paramref name="values"/> in place. NaN for an empty list.
    /// </summary>
    public static double Percentile(List<double> values, double p, bool sorted = false)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        if (!sorted)
        {
            values.Sort();
        }

        double rank = p / 100.0 * (values.Count - 1);
        int lo = (int)Math.Floor(rank);
        int hi = Math.Min(lo + 1, values.Count - 1);
        double frac = rank - lo;
        return values[lo] + (values[hi] - values[lo]) * frac;
    }

    /// <summary>Jain's fairness index (Σx)² / (n Σx²): 1 when all equal, 1/n when one takes all. 1 for an empty set.</summary>
    public static double Jain(IReadOnlyList<double> x)
    {
        if (x.Count == 0)
        {
            return 1.0;
        }

        double sum = 0, sumSq = 0;
        foreach (var v in x)
        {
            sum += v;
            sumSq += v * v;
        }

        return sumSq == 0 ? 1.0 : sum * sum / (x.Count * sumSq);
    }

    /// <summary>
    /// Shares that a weight tree entitles each of <paramref name="active"/> tenants to: at every level the node's
    /// weight over the summed weights of its active siblings, multiplied down the path ("org-a/k1": share of org-a
    /// among active orgs × share of k1 among org-a's active children).
    /// </summary>
    public static double[] EntitledShares(IReadOnlyList<string> active, Func<string, double> weightOf)
    {
        var result = new double[active.Count];
        var segments = new string[active.Count][];
        for (int i = 0; i < active.Count; i++)
        {
            segments[i] = active[i].Split('/');
        }

        for (int i = 0; i < active.Count; i++)
        {
            double share = 1.0;
            var mine = segments[i];
            for (int d = 0; d < mine.Length; d++)
            {
                string node = string.Join('/', mine, 0, d + 1);
                string parent = d == 0 ? "" : string.Join('/', mine, 0, d);
                double own = weightOf(node);
                double sum = 0;
                var seen = new HashSet<string>(StringComparer.Ordinal);
                for (int j = 0; j < active.Count; j++)
                {
                    var other = segments[j];
                    if (other.Length <= d)
                    {
                        continue;
                    }

                    string otherParent = d == 0 ? "" : string.Join('/', other, 0, d);
                    if (otherParent != parent)
                    {
                        continue;
                    }

                    string sibling = string.Join('/', other, 0, d + 1);
                    if (seen.Add(sibling))
                    {
                        sum += weightOf(sibling);
                    }
                }

                share *= sum > 0 ? own / sum : 0;
            }

            result[i] = share;
        }

        return result;
    }
}
