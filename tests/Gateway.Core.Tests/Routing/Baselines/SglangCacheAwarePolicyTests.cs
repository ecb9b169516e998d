using Gateway.Core.Routing;
using Gateway.Core.Routing.Baselines;

namespace Gateway.Core.Tests.Routing.Baselines;

public class SglangCacheAwarePolicyTests
{
    private static readonly SglangCacheAwareOptions V0 = SglangCacheAwareOptions.V0;

    [Fact]
    public void Current_PinsModelGatewayCliDefaults()
    {
        var o = SglangCacheAwareOptions.Current;
        Assert.Equal(0.3, o.CacheThreshold);
        Assert.Equal(64, o.BalanceAbsThreshold);
        Assert.Equal(1.5, o.BalanceRelThreshold);
        Assert.Equal(TimeSpan.FromSeconds(120), o.EvictionInterval);
        Assert.Equal(1L << 26, o.MaxTreeSizeChars);
        Assert.False(o.MissToSmallestTree);
        Assert.Equal(SglangCacheAwarePolicy.PolicyName, RoutingPolicies.Create("sglang-cache-aware", new RoutingPolicyContext()).Name);
    }

    [Fact]
    public void V0_PinsOlderRouterArgsDefaults()
    {
        Assert.Equal(0.5, V0.CacheThreshold);
        Assert.Equal(32, V0.BalanceAbsThreshold);
        Assert.Equal(1.0001, V0.BalanceRelThreshold);
        Assert.Equal(TimeSpan.FromSeconds(60), V0.EvictionInterval);
        Assert.Equal(1L << 24, V0.MaxTreeSizeChars);
        Assert.True(V0.MissToSmallestTree);
        var p = Assert.IsType<SglangCacheAwarePolicy>(RoutingPolicies.Create("sglang-cache-aware-v0", new RoutingPolicyContext()));
        Assert.Equal(V0, p.Options);
    }

    [Fact]
    public void MaxTreeBlocks_ConvertsCharactersByCharsPerTokenAndBlockSize()
    {
        // blocks = chars / (4.2 chars per token x 16 tokens per block)
        Assert.Equal(998_643, SglangCacheAwareOptions.Current.MaxTreeBlocks(16));
        Assert.Equal(249_660, V0.MaxTreeBlocks(16));
        Assert.Equal(10, (SglangCacheAwareOptions.Current with { MaxTreeSizeChars = 640, CharsPerToken = 4 }).MaxTreeBlocks(16));
    }

    [Fact]
    public void CharsPerToken_IsWhatTheGatewayTokenizerMeasures()
    {
        const string prose = "The gateway sits between applications and a fleet of inference workers. For every request it decides " +
            "who is served next and where, weighing the prefix cache each worker already holds against how busy it is. " +
            "Coding agents alternate model turns and tool calls, and each turn re-sends nearly the whole context.";
        double measured = (double)prose.Length / Llm.Prompt.Tokenization.DefaultTokenizer.Instance.CountTokens(prose);
        Assert.InRange(measured, SglangCacheAwareOptions.Current.CharsPerToken - 0.5, SglangCacheAwareOptions.Current.CharsPerToken + 0.5);
    }

    [Fact]
    public void Knobs_OverrideByNameAndRejectUnknownKeys()
    {
        var p = Assert.IsType<SglangCacheAwarePolicy>(RoutingPolicies.Create("sglang-cache-aware:cache_threshold=0.5+balance_abs_threshold=32+max_tree_size=1024", new RoutingPolicyContext()));
        Assert.Equal(0.5, p.Options.CacheThreshold);
        Assert.Equal(32, p.Options.BalanceAbsThreshold);
        Assert.Equal(1024, p.Options.MaxTreeSizeChars);
        Assert.Equal(1.5, p.Options.BalanceRelThreshold);
        Assert.True(RoutingPolicies.IsKnown("sglang-cache-aware-v0:miss_to_smallest_tree=0"));
        Assert.False(RoutingPolicies.IsKnown("sglang-cache-aware:no_such_knob=1"));
        Assert.False(RoutingPolicies.IsKnown("sglang-cache-aware:cache_threshold=2"));
    }

    // Upstream cache_aware.rs test_cache_aware_with_balanced_load: "hello world" twice goes to the same worker, and so
    // does its prefix "hello" (match rate 1).
    [Fact]
    public void Upstream_BalancedLoad_SameAndPrefixRequestsStayOnWorker()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider());
        var workers = BaselineTestHelpers.Workers(2);
        int first = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("hello", 10), workers);
        Assert.Equal(first, BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("hello", 10), workers));
        Assert.Equal(first, BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("hello", 5), workers));
    }

    // Upstream test_cache_aware_with_imbalanced_load: thresholds 0.5 / 5 / 2.0, worker 1 has 20 in flight, worker 2 none:
    // five routings of "test" all go to worker 2.
    [Fact]
    public void Upstream_ImbalancedLoad_AlwaysPicksLeastLoaded()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider(), new SglangCacheAwareOptions { CacheThreshold = 0.5, BalanceAbsThreshold = 5, BalanceRelThreshold = 2.0 });
        var workers = BaselineTestHelpers.Workers(2);
        for (int i = 0; i < 20; i++)
        {
            workers[0].OnDispatched(0);
        }

        for (int i = 0; i < 5; i++)
        {
            var d = policy.Route(BaselineTestHelpers.Request("test", 1), workers);
            Assert.Equal(1, d.WorkerIndex);
            Assert.Equal("load", d.Reason);
        }
    }

    // Upstream test_cache_aware_worker_removal: after worker 1 is removed (unhealthy), "test1" goes to worker 2.
    [Fact]
    public void Upstream_WorkerRemoval_RoutesToRemainingWorker()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider());
        var workers = BaselineTestHelpers.Workers(2);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("test1", 3), workers);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("test2", 3), workers);
        workers[0].Healthy = false;
        Assert.Equal(1, policy.Route(BaselineTestHelpers.Request("test1", 3), workers).WorkerIndex);
    }

    // Upstream tree.rs test_get_smallest_tenant (older router): a miss goes to the worker whose tree is smallest.
    [Fact]
    public void V0_Miss_GoesToSmallestTree()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider(), V0);
        var workers = BaselineTestHelpers.Workers(3);
        int w0 = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 30), workers);
        int w1 = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("b", 20), workers);
        Assert.NotEqual(w0, w1);
        var d = policy.Route(BaselineTestHelpers.Request("c", 5), workers);
        Assert.Equal("smallest-tree", d.Reason);
        Assert.Equal(0, policy.TreeSize(d.WorkerIndex));
    }

    [Fact]
    public void Current_Miss_GoesToLeastLoadedWorker()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider());
        var workers = BaselineTestHelpers.Workers(3);
        workers[0].OnDispatched(0);
        workers[2].OnDispatched(0);
        var d = policy.Route(BaselineTestHelpers.Request("c", 5), workers);
        Assert.Equal(1, d.WorkerIndex);
        Assert.Equal("least-load", d.Reason);
    }

    [Fact]
    public void Route_MatchAtOrBelowThreshold_IsTreatedAsMiss()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider(), V0);
        var workers = BaselineTestHelpers.Workers(2);
        int w0 = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 5), workers);
        // 5 of 10 blocks match: rate 0.5 is not > 0.5, so the smaller (empty) tree wins.
        var d = policy.Route(BaselineTestHelpers.Request("a", 10), workers);
        Assert.NotEqual(w0, d.WorkerIndex);

        // The current gateway's threshold is 0.3: the same half match is affinity.
        var current = new SglangCacheAwarePolicy(new FakeTimeProvider());
        int c0 = BaselineTestHelpers.Dispatch(current, BaselineTestHelpers.Request("a", 5), workers);
        Assert.Equal(c0, current.Route(BaselineTestHelpers.Request("a", 10), workers).WorkerIndex);
    }

    [Fact]
    public void Route_SmallLoadGap_KeepsAffinity()
    {
        var policy = new SglangCacheAwarePolicy(new FakeTimeProvider());
        var workers = BaselineTestHelpers.Workers(2);
        int hot = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 10), workers);
        for (int i = 0; i < 60; i++)
        {
            workers[hot].OnDispatched(0); // gap 61 <= 64: still balanced
        }

        Assert.Equal(hot, policy.Route(BaselineTestHelpers.Request("a", 10), workers).WorkerIndex);
        for (int i = 0; i < 4; i++)
        {
            workers[hot].OnDispatched(0); // 65 in flight vs 0: 65 - 0 > 64 and 65 > 1.5 x 0, imbalanced
        }

        Assert.Equal(1 - hot, policy.Route(BaselineTestHelpers.Request("a", 10), workers).WorkerIndex);
    }

    [Fact]
    public void Eviction_AfterInterval_CutsTreeToBudgetKeepingRecentPrefix()
    {
        var time = new FakeTimeProvider();
        // 192 characters at 1 character per token = 12 blocks of 16 tokens.
        var policy = new SglangCacheAwarePolicy(time, V0 with { MaxTreeSizeChars = 192, CharsPerToken = 1 });
        var workers = BaselineTestHelpers.Workers(1);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("old", 10), workers);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("new", 10), workers);
        Assert.Equal(20, policy.TreeSize(0));

        time.Advance(TimeSpan.FromSeconds(59));
        policy.Route(BaselineTestHelpers.Request("x", 1), workers);
        Assert.Equal(20, policy.TreeSize(0)); // not yet: eviction runs every 60 s

        time.Advance(TimeSpan.FromSeconds(2));
        var d = policy.Route(BaselineTestHelpers.Request("new", 10), workers);
        Assert.True(policy.TreeSize(0) <= 12);
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
        Assert.Contains(SglangCacheAwarePolicy.V0PolicyName, RoutingPolicies.Names);
    }
}
