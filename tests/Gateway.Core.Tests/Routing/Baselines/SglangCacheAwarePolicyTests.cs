using Gateway.Core.Routing;
using Gateway.Core.Routing.Baselines;

namespace Gateway.Core.Tests.Routing.Baselines;

public class SglangCacheAwarePolicyTests
{
    [Fact]
    public void Route_RepeatedPrefix_GoesBackToWorkerHoldingIt()
    {
        var policy = new SglangCacheAwarePolicy(new ManualTime());
        var workers = BaselineTestHelpers.Workers(4);
        int first = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 10), workers);
        var again = BaselineTestHelpers.Request("a", 10, extraTokens: 5);
        var d = policy.Route(again, workers);
        Assert.Equal(first, d.WorkerIndex);
        Assert.Equal("affinity", d.Reason);
        Assert.Equal(160, d.PredictedCachedTokens);
    }

    [Fact]
    public void Route_Miss_GoesToSmallestTree()
    {
        var policy = new SglangCacheAwarePolicy(new ManualTime());
        var workers = BaselineTestHelpers.Workers(3);
        int w0 = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 30), workers);
        int w1 = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("b", 20), workers);
        Assert.NotEqual(w0, w1);
        var d = policy.Route(BaselineTestHelpers.Request("c", 5), workers);
        Assert.Equal("smallest-tree", d.Reason);
        Assert.NotEqual(w0, d.WorkerIndex);
        Assert.NotEqual(w1, d.WorkerIndex);
        Assert.Equal(0, policy.TreeSize(d.WorkerIndex));
    }

    [Fact]
    public void Route_MatchAtOrBelowThreshold_IsTreatedAsMiss()
    {
        var policy = new SglangCacheAwarePolicy(new ManualTime());
        var workers = BaselineTestHelpers.Workers(2);
        int w0 = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 5), workers);
        // 5 of 10 blocks match: rate 0.5 is not > 0.5, so the smaller (empty) tree wins.
        var d = policy.Route(BaselineTestHelpers.Request("a", 10), workers);
        Assert.NotEqual(w0, d.WorkerIndex);
        Assert.Equal("smallest-tree", d.Reason);
    }

    [Fact]
    public void Route_Imbalanced_PicksLeastLoadedDespiteAffinity()
    {
        var policy = new SglangCacheAwarePolicy(new ManualTime());
        var workers = BaselineTestHelpers.Workers(2);
        int hot = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 10), workers);
        for (int i = 0; i < 40; i++)
        {
            workers[hot].OnDispatched(0); // 41 in flight vs 0: 41 - 0 > 32 and 41 > 1.1 * 0
        }

        var d = policy.Route(BaselineTestHelpers.Request("a", 10), workers);
        Assert.Equal(1 - hot, d.WorkerIndex);
        Assert.Equal("load", d.Reason);
    }

    [Fact]
    public void Route_SmallLoadGap_KeepsAffinity()
    {
        var policy = new SglangCacheAwarePolicy(new ManualTime());
        var workers = BaselineTestHelpers.Workers(2);
        int hot = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 10), workers);
        for (int i = 0; i < 20; i++)
        {
            workers[hot].OnDispatched(0); // gap 21 <= 32: still balanced
        }

        Assert.Equal(hot, policy.Route(BaselineTestHelpers.Request("a", 10), workers).WorkerIndex);
    }

    [Fact]
    public void Eviction_AfterInterval_CutsTreeToMaxSizeKeepingRecentPrefix()
    {
        var time = new ManualTime();
        var policy = new SglangCacheAwarePolicy(time, maxTreeSize: 12);
        var workers = BaselineTestHelpers.Workers(1);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("old", 10), workers);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("new", 10), workers);
        Assert.Equal(20, policy.TreeSize(0));

        time.Advance(TimeSpan.FromSeconds(29));
        policy.Route(BaselineTestHelpers.Request("x", 1), workers);
        Assert.Equal(20, policy.TreeSize(0)); // not yet: eviction runs every 30 s

        time.Advance(TimeSpan.FromSeconds(2));
        var d = policy.Route(BaselineTestHelpers.Request("new", 10), workers);
        Assert.Equal(12, policy.TreeSize(0));
        Assert.Equal(160, d.PredictedCachedTokens); // the recent prompt survived; the old one lost its leaves
        Assert.Equal(16 * 2, policy.Route(BaselineTestHelpers.Request("old", 10), workers).PredictedCachedTokens);
    }

    [Fact]
    public void Create_ByName_ReturnsFreshPolicy()
    {
        var a = RoutingPolicies.Create(SglangCacheAwarePolicy.PolicyName, new RoutingPolicyContext());
        var b = RoutingPolicies.Create(SglangCacheAwarePolicy.PolicyName, new RoutingPolicyContext());
        Assert.IsType<SglangCacheAwarePolicy>(a);
        Assert.NotSame(a, b);
        Assert.Contains(SglangCacheAwarePolicy.PolicyName, RoutingPolicies.Names);
    }
}
