using Gateway.Core.Agents;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Agents;

/// <summary>
/// The predictive policy priced by the worker's eviction age T_c (Che's characteristic time of its LRU,
/// <see cref="RetentionOptions.EvictionAge"/>): a return within T_c is a hit without a pin, and only the residency a pin adds
/// is charged.
/// </summary>
public class EvictionAgePricingTests
{
    // Tool prior: median 9 s, p90 71 s. 1,000 of 20,000 blocks at weight 1 cost 0.05/s; 5 s of prefill saved.
    private static readonly GapDistribution ToolGaps = new GapPredictorOptions().ToolPrior;

    private static PredictiveRetentionPolicy Policy(EvictionAgeMode mode) =>
        new(new FakeTimeProvider(), new RetentionOptions { HbmPins = true, EvictionAge = mode });

    private static TurnCompletion Tool(string session, double evictionAge) => new()
    {
        SessionId = session,
        Tenant = "t",
        AgentKind = "claude-code",
        Outcome = new TurnOutcome(GapKind.Tool, "Bash"),
        Worker = 0,
        Blocks = 1000,
        WorkerKvBlocks = 20000,
        PrefillSeconds = 5,
        EvictionAgeSeconds = evictionAge,
    };

    [Theory]
    [InlineData(EvictionAgeMode.Cover, 0.0)]
    [InlineData(EvictionAgeMode.Shift, 0.0)]
    [InlineData(EvictionAgeMode.Cover, double.NaN)]
    [InlineData(EvictionAgeMode.Shift, double.NaN)]
    public void EvictionAgeZeroOrUnknown_IsTheRuleWithoutIt(EvictionAgeMode mode, double tc)
    {
        var old = Policy(EvictionAgeMode.Off).BestTtl(ToolGaps, 5, 0.05);
        Assert.True(old.TtlSeconds > 0);
        Assert.Equal(old, Policy(mode).BestTtl(ToolGaps, 5, 0.05, tc));
    }

    [Fact]
    public void ModeOff_IgnoresTheEvictionAge()
    {
        var p = Policy(EvictionAgeMode.Off);
        Assert.Equal(p.BestTtl(ToolGaps, 5, 0.05), p.BestTtl(ToolGaps, 5, 0.05, double.PositiveInfinity));
        Assert.Equal(p.BestTtl(ToolGaps, 5, 0.05), p.BestTtl(ToolGaps, 5, 0.05, 20));
    }

    [Theory]
    [InlineData(EvictionAgeMode.Cover)]
    [InlineData(EvictionAgeMode.Shift)]
    public void NothingEvicted_APinSavesNothing_AndIsNotSent(EvictionAgeMode mode)
    {
        var p = Policy(mode);
        Assert.Equal((0.0, 0.0), p.BestTtl(ToolGaps, 5, 0.05, double.PositiveInfinity));

        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("s", double.PositiveInfinity), actions);
        Assert.Equal(RetentionActionKind.Release, Assert.Single(actions).Kind);
        Assert.Equal(1, p.Stats.Skipped);
    }

    [Theory]
    [InlineData(EvictionAgeMode.Cover)]
    [InlineData(EvictionAgeMode.Shift)]
    public void LruKeepsContextsLongerThanMostGaps_PinIsWorthNothing(EvictionAgeMode mode)
    {
        // T_c = 200 s: the LRU alone covers ~96 % of these gaps; what is left is not worth the memory.
        Assert.Equal(0, Policy(mode).BestTtl(ToolGaps, 5, 0.05, 200).TtlSeconds);
        Assert.True(Policy(EvictionAgeMode.Off).BestTtl(ToolGaps, 5, 0.05).TtlSeconds > 0); // the old rule pins anyway
    }

    [Fact]
    public void Cover_ATtlWithinTheEvictionAge_IsNeitherCreditedNorCharged_ReturnsBeyondItAre()
    {
        const double tc = 5;
        var p = Policy(EvictionAgeMode.Cover);
        var (ttl, prob) = p.BestTtl(ToolGaps, 5, 0.05, tc);

        Assert.True(ttl > tc);
        Assert.Equal(ToolGaps.Cdf(ttl) - ToolGaps.Cdf(tc), prob, 9);

        // Brute force of [P(gap ≤ t) − P(gap ≤ T_c)]⁺·saved − c·max(0, t − T_c): the chosen TTL is within 2 % of the best.
        double best = 0;
        for (double t = 0.5; t <= 300; t += 0.01)
        {
            best = Math.Max(best, Math.Max(0, ToolGaps.Cdf(t) - ToolGaps.Cdf(tc)) * 5 - 0.05 * Math.Max(0, t - tc));
        }

        Assert.True(prob * 5 - 0.05 * (ttl - tc) >= best * 0.98);
    }

    [Fact]
    public void Cover_IsTheOldRuleLessWhatTheLruGivesForFree_SameTtlLessCredit_OrNoPin()
    {
        // For t ≥ T_c: net_cover(t) = net_old(t) − net_old(T_c). The TTL is the old one when that lies beyond T_c ...
        var old = Policy(EvictionAgeMode.Off).BestTtl(ToolGaps, 5, 0.05);
        var cover = Policy(EvictionAgeMode.Cover).BestTtl(ToolGaps, 5, 0.05, 3);
        Assert.True(old.TtlSeconds > 3);
        Assert.Equal(old.TtlSeconds, cover.TtlSeconds);
        Assert.Equal(old.Probability - ToolGaps.Cdf(3), cover.Probability, 9);

        // ... and no pin when holding to T_c (free: the LRU does it) already earns what the best pin would: at 0.4/s the
        // old rule still pins, but returns within 3 s were all its worth.
        Assert.True(Policy(EvictionAgeMode.Off).BestTtl(ToolGaps, 5, 0.4).TtlSeconds > 0);
        Assert.Equal((0.0, 0.0), Policy(EvictionAgeMode.Cover).BestTtl(ToolGaps, 5, 0.4, 3));
        Assert.Equal((0.0, 0.0), Policy(EvictionAgeMode.Shift).BestTtl(ToolGaps, 5, 0.4, 3));
    }

    [Fact]
    public void Shift_ALapsedPinStillHasTheLruTime_TtlTCoversGapsToTPlusTc()
    {
        const double tc = 5;
        var p = Policy(EvictionAgeMode.Shift);
        var (ttl, prob) = p.BestTtl(ToolGaps, 5, 0.05, tc);

        Assert.True(ttl > 0);
        Assert.Equal(ToolGaps.Cdf(ttl + tc) - ToolGaps.Cdf(tc), prob, 9);

        double best = 0;
        for (double t = 0.5; t <= 300; t += 0.01)
        {
            best = Math.Max(best, (ToolGaps.Cdf(t + tc) - ToolGaps.Cdf(tc)) * 5 - 0.05 * t);
        }

        Assert.True(prob * 5 - 0.05 * ttl >= best * 0.98);

        // Same residency horizon as Cover, sent as a TTL shorter by about T_c.
        var cover = Policy(EvictionAgeMode.Cover).BestTtl(ToolGaps, 5, 0.05, tc);
        Assert.InRange(ttl + tc, cover.TtlSeconds * 0.9, cover.TtlSeconds * 1.1);
    }

    [Fact]
    public void Shift_Renewal_CountsOnlyReturnsAfterTheLapsedPinsLruTime()
    {
        const double tc = 5;
        var p = Policy(EvictionAgeMode.Shift);
        double held = 20;
        var (extra, prob) = p.BestRenewal(ToolGaps, held, 5, 0.05, 280, tc);

        Assert.True(extra > 0);
        double survive = 1 - ToolGaps.Cdf(held);
        Assert.Equal((ToolGaps.Cdf(held + extra + tc) - ToolGaps.Cdf(held + tc)) / survive, prob, 9);
        Assert.Equal((0.0, 0.0), p.BestRenewal(ToolGaps, held, 5, 0.05, 280, double.PositiveInfinity));
    }

    [Fact]
    public void Cover_Renewal_PastTheEvictionAge_IsTheOldRenewal()
    {
        // Held 20 s > T_c = 5 s: without renewal the context is gone now either way.
        var cover = Policy(EvictionAgeMode.Cover).BestRenewal(ToolGaps, 20, 5, 0.05, 280, 5);
        var old = Policy(EvictionAgeMode.Off).BestRenewal(ToolGaps, 20, 5, 0.05, 280);
        Assert.Equal(old.ExtraSeconds, cover.ExtraSeconds);
        Assert.Equal(old.Probability, cover.Probability, 9);
    }

    [Fact]
    public void PolicyUsesTheTurnsEvictionAge_ValueIsTheCreditedProbabilityTimesSaved()
    {
        var p = Policy(EvictionAgeMode.Shift);
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("s", 5), actions);

        var pin = Assert.Single(actions);
        Assert.Equal(RetentionActionKind.Retain, pin.Kind);
        var (ttl, prob) = p.BestTtl(ToolGaps, 5, 0.05, 5);
        Assert.Equal((long)Math.Ceiling(ttl * 1000), pin.TtlMs);
        Assert.Equal(prob * 5, pin.Value, 9);
    }

    [Theory]
    [InlineData("off", EvictionAgeMode.Off)]
    [InlineData("cover", EvictionAgeMode.Cover)]
    [InlineData("Shift", EvictionAgeMode.Shift)]
    public void ModeNames_Parse(string name, EvictionAgeMode mode)
    {
        Assert.True(RetentionPolicies.TryParseEvictionAge(name, out var parsed));
        Assert.Equal(mode, parsed);
        Assert.False(RetentionPolicies.TryParseEvictionAge("sometimes", out _));
    }
}
