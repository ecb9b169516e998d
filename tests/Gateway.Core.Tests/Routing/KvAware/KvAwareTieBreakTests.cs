using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>Ties among near-least-cost workers with the same cached match: drawn at random, or by least recent work.</summary>
public class KvAwareTieBreakTests
{
    private readonly FakeTimeProvider _time = new();

    /// <summary>A prompt of <paramref name="blocks"/> 16-token blocks hashed from <paramref name="first"/> up, 8 output tokens.</summary>
    internal static RouteRequest Req(ulong first, int blocks) => new()
    {
        TenantPath = "t",
        BlockHashes = [.. Enumerable.Range(0, blocks).Select(i => first + (ulong)i)],
        PromptTokens = blocks * 16,
        ExpectedOutputTokens = 8,
    };

    [Fact]
    public void TieByRecentWork_IdleWorkers_MissGoesToTheOneWithLeastRecentWork()
    {
        // Worker 0 prefilled a 4,000-token prompt a second ago and is idle again; worker 1 did nothing. A cold request
        // costs the same on both (no queue, no match), so at random it lands on worker 0 about half the time; by recent
        // work it goes to worker 1 on every seed.
        for (int seed = 1; seed <= 12; seed++)
        {
            var p = new KvAwarePolicy(_time, new Random(seed), KvAwareOptions.Parse("tie_by_recent_work=1"));
            var fleet = KvAwarePolicyTests.Fleet(2);
            var earlier = Req(1_000_000, 250);
            p.OnRouted(earlier, fleet[0]);
            _time.Advance(TimeSpan.FromSeconds(1));

            var d = p.Route(Req(2_000_000, 4), fleet);
            Assert.Equal(1, d.WorkerIndex);
            Assert.Equal("load", d.Reason);
        }
    }

    [Fact]
    public void RandomTie_Default_SpreadsColdRequestsOverBothIdleWorkers()
    {
        var seen = new HashSet<int>();
        for (int seed = 1; seed <= 12; seed++)
        {
            var p = new KvAwarePolicy(_time, new Random(seed));
            Assert.False(p.Options.TieByRecentWork);
            var fleet = KvAwarePolicyTests.Fleet(2);
            p.OnRouted(Req(1_000_000, 250), fleet[0]);
            seen.Add(p.Route(Req(2_000_000, 4), fleet).WorkerIndex);
        }

        Assert.Equal(new[] { 0, 1 }, seen.Order());
    }

    [Fact]
    public void TieByRecentWork_LongerCachedMatchStillWins()
    {
        // Recent work only orders workers whose match is equal: the holder of the prefix keeps it.
        var p = new KvAwarePolicy(_time, new Random(1), KvAwareOptions.Parse("tie_by_recent_work=1"));
        var fleet = KvAwarePolicyTests.Fleet(2);
        var prefix = Req(3_000_000, 20);
        p.OnRouted(prefix, fleet[0]);
        Assert.Equal(0, p.Route(Req(3_000_000, 20), fleet).WorkerIndex);
    }

    [Fact]
    public void Knobs_SpillOffByDefault_TieByRecentWorkParsesZeroOrOne()
    {
        Assert.True(double.IsPositiveInfinity(new KvAwareOptions().SpillQueueSeconds));
        Assert.Equal(1.0, KvAwareOptions.Parse("spill_queue_seconds=1").SpillQueueSeconds);
        Assert.True(KvAwareOptions.Parse("tie_by_recent_work=1").TieByRecentWork);
        Assert.False(KvAwareOptions.Parse("tie_by_recent_work=0").TieByRecentWork);
        var e = Assert.Throws<ArgumentException>(() => KvAwareOptions.Parse("tie_by_recent_work=2"));
        Assert.Contains("expected 0 or 1", e.Message, StringComparison.Ordinal);
    }
}
