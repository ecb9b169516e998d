using Simulator.Simulation;

namespace Simulator.Tests.Simulation;

public class StatsTests
{
    [Fact]
    public void Percentile_LinearInterpolation()
    {
        var v = new List<double> { 4, 1, 3, 2, 5 };
        Assert.Equal(3, Stats.Percentile(v, 50));
        Assert.Equal(4.6, Stats.Percentile(v, 90), 9);
        Assert.Equal(1, Stats.Percentile(v, 0));
        Assert.Equal(5, Stats.Percentile(v, 100));
        Assert.True(double.IsNaN(Stats.Percentile([], 50)));
    }

    [Fact]
    public void Jain_EqualIsOne_OneTakesAllIsOneOverN()
    {
        Assert.Equal(1.0, Stats.Jain([2, 2, 2]), 12);
        Assert.Equal(0.25, Stats.Jain([1, 0, 0, 0]), 12);
        Assert.Equal(0.9, Stats.Jain([1, 2]), 12); // 9 / (2 × 5)
    }

    [Fact]
    public void EntitledShares_Hierarchical()
    {
        var w = new Dictionary<string, double> { ["org-a"] = 2, ["org-a/k1"] = 3 };
        double W(string p) => w.TryGetValue(p, out var x) ? x : 1;
        var s = Stats.EntitledShares(["org-a/k1", "org-a/k2", "org-b"], W);
        Assert.Equal(2.0 / 3 * 3 / 4, s[0], 12);
        Assert.Equal(2.0 / 3 * 1 / 4, s[1], 12);
        Assert.Equal(1.0 / 3, s[2], 12);
        Assert.Equal(1.0, s.Sum(), 12);
    }
}
