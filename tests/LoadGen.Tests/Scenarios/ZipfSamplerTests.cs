using LoadGen.Scenarios;

namespace LoadGen.Tests.Scenarios;

public class ZipfSamplerTests
{
    [Fact]
    public void Sample_ExponentOne_FrequenciesFallAsOneOverRank()
    {
        var zipf = new ZipfSampler(10, 1.0);
        var rng = new Random(7);
        var counts = new int[10];
        for (int i = 0; i < 200_000; i++)
        {
            counts[zipf.Sample(rng)]++;
        }

        Assert.InRange(counts[0] / (double)counts[1], 1.85, 2.15);   // 2
        Assert.InRange(counts[0] / (double)counts[4], 4.6, 5.4);     // 5
        Assert.InRange(counts[0] / (double)counts[9], 9.0, 11.0);    // 10
        double expected0 = 1 / Enumerable.Range(1, 10).Sum(k => 1.0 / k);
        Assert.InRange(counts[0] / 200_000.0, expected0 - 0.01, expected0 + 0.01);
        Assert.Equal(expected0, zipf.Probability(0), 9);
    }

    [Fact]
    public void Sample_ExponentZero_IsUniform()
    {
        var zipf = new ZipfSampler(4, 0);
        var rng = new Random(3);
        var counts = new int[4];
        for (int i = 0; i < 40_000; i++)
        {
            counts[zipf.Sample(rng)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 9_400, 10_600));
    }

    [Fact]
    public void Sample_SameSeed_SameSequence()
    {
        var zipf = new ZipfSampler(50, 1.2);
        var a = new Random(11);
        var b = new Random(11);
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(zipf.Sample(a), zipf.Sample(b));
        }
    }

    [Fact]
    public void Constructor_NoRanks_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ZipfSampler(0, 1));
    }
}
