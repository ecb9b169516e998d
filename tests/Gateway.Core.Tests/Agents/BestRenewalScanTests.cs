using Gateway.Core.Agents;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Agents;

/// <summary>
/// The predictive policy's TTL rule stops its grid scan early (once no later TTL can beat the best so far) and reads a
/// fresh pin's CDF from precomputed logarithms: its answers are exactly those of the full scan of the 96-point log grid
/// written out here from the rule's definition.
/// </summary>
public class BestRenewalScanTests
{
    private const int Points = 96;

    public static TheoryData<EvictionAgeMode> Modes => [EvictionAgeMode.Off, EvictionAgeMode.Cover, EvictionAgeMode.Shift];

    [Theory]
    [MemberData(nameof(Modes))]
    public void BestRenewal_AnyDistributionCostAndHeldTime_SameAnswerAsTheFullGridScan(EvictionAgeMode mode)
    {
        var options = new RetentionOptions { HbmPins = true, EvictionAge = mode };
        var policy = new PredictiveRetentionPolicy(new FakeTimeProvider(), options);
        var random = new Random(21);
        int pinned = 0;
        for (int i = 0; i < 2000; i++)
        {
            var gap = new GapDistribution(Math.Log(0.2 + random.NextDouble() * 400), 0.2 + random.NextDouble() * 2.5, random.Next(0, 50));
            double held = i % 3 == 0 ? 0 : random.NextDouble() * 120;
            double saved = random.NextDouble() * random.Next(0, 30);
            double cost = Math.Pow(10, -4 + random.NextDouble() * 4);
            double maxExtra = i % 5 == 0 ? double.PositiveInfinity : options.MaxTtlSeconds - held;
            double tc = i % 4 == 0 ? double.NaN : random.NextDouble() * 60;

            var expected = FullScan(options, gap, held, saved, cost, maxExtra, tc);
            Assert.Equal(expected, policy.BestRenewal(gap, held, saved, cost, maxExtra, tc));
            if (held == 0)
            {
                Assert.Equal(FullScan(options, gap, 0, saved, cost, double.PositiveInfinity, tc), policy.BestTtl(gap, saved, cost, tc));
            }

            pinned += expected.Item1 > 0 ? 1 : 0;
        }

        Assert.InRange(pinned, 200, 1800); // both answers occur: the comparison covers pins and releases
    }

    // The rule as defined: every grid point up to maxExtra, the first strict maximum of the net benefit.
    private static (double, double) FullScan(RetentionOptions o, GapDistribution gap, double held, double saved, double cost, double maxExtra, double tc)
    {
        double f0 = gap.Cdf(held);
        double survive = 1 - f0;
        if (survive < 1e-9)
        {
            return (0, 0);
        }

        var mode = o.EvictionAge;
        if (mode == EvictionAgeMode.Off || double.IsNaN(tc) || tc <= 0)
        {
            mode = EvictionAgeMode.Off;
            tc = 0;
        }

        double kept = mode switch
        {
            EvictionAgeMode.Shift => held + tc,
            EvictionAgeMode.Cover => Math.Max(held, tc),
            _ => held,
        };
        double fKept = mode == EvictionAgeMode.Off ? f0 : gap.Cdf(kept);
        double ratio = Math.Pow(o.MaxTtlSeconds / o.MinTtlSeconds, 1.0 / (Points - 1));
        double best = 0, bestT = 0, bestP = 0;
        for (int i = 0; i < Points; i++)
        {
            double t = o.MinTtlSeconds * Math.Pow(ratio, i);
            if (t > maxExtra)
            {
                break;
            }

            double until = mode == EvictionAgeMode.Shift ? held + t + tc : held + t;
            double charged = mode == EvictionAgeMode.Cover ? Math.Max(0, held + t - kept) : t;
            double p = Math.Max(0, gap.Cdf(until) - fKept) / survive;
            double net = p * saved - cost * charged;
            if (net > best)
            {
                best = net;
                bestT = t;
                bestP = p;
            }
        }

        return (bestT, bestP);
    }
}
