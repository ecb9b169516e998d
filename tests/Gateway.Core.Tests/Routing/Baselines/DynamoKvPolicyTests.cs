using Gateway.Core.Routing;
using Gateway.Core.Routing.Baselines;
using Gateway.Core.Routing.KvAware;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.Baselines;

public class DynamoKvPolicyTests
{
    [Fact]
    public void Route_Overlap_LowersCostOnWorkerThatSawPrefix()
    {
        var policy = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Approximate);
        var workers = BaselineTestHelpers.Workers(3);
        var first = BaselineTestHelpers.Request("a", 50);
        int w = BaselineTestHelpers.Dispatch(policy, first, workers);
        policy.OnCompleted(first, workers[w], 0);
        workers[w].OnCompleted(first.PromptTokens, first.PromptTokens, reachedDecode: false);

        var d = policy.Route(BaselineTestHelpers.Request("a", 50, extraTokens: 8), workers);
        Assert.Equal(w, d.WorkerIndex);
        Assert.Equal(800, d.PredictedCachedTokens);
    }

    [Fact]
    public void Route_CostFormula_PendingPrefillOutweighsOverlap()
    {
        var policy = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Approximate);
        var workers = BaselineTestHelpers.Workers(2);
        var r = BaselineTestHelpers.Request("a", 10);
        int w = BaselineTestHelpers.Dispatch(policy, r, workers);
        policy.OnCompleted(r, workers[w], 0);
        workers[w].OnCompleted(r.PromptTokens, r.PromptTokens, reachedDecode: false);

        // Worker w: overlap 10 blocks, but 100 blocks of someone else's prefill pending:
        // cost = (1600 + 0)/16 + 0 + 10 = 110; other worker: 160/16 + 0 + 10 = 20.
        workers[w].OnDispatched(1600);
        var d = policy.Route(BaselineTestHelpers.Request("a", 10), workers);
        Assert.Equal(1 - w, d.WorkerIndex);
        Assert.Equal(160, d.BestOtherCachedTokens);
    }

    [Fact]
    public void Route_ActiveBlocks_CountAsDecodeLoad()
    {
        var policy = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Approximate);
        var workers = BaselineTestHelpers.Workers(2);
        var big = BaselineTestHelpers.Request("big", 100);
        int w = BaselineTestHelpers.Dispatch(policy, big, workers);
        workers[w].OnFirstToken(big.PromptTokens, big.PromptTokens); // prefill done, blocks still active
        var d = policy.Route(BaselineTestHelpers.Request("small", 4), workers);
        Assert.Equal(1 - w, d.WorkerIndex);
    }

    [Fact]
    public void ApproxIndex_ForgetsPrefixAfter120Seconds()
    {
        var time = new FakeTimeProvider();
        var policy = new DynamoKvPolicy(time, DynamoKvOptions.Approximate);
        var workers = BaselineTestHelpers.Workers(2);
        var r = BaselineTestHelpers.Request("a", 20);
        int w = BaselineTestHelpers.Dispatch(policy, r, workers);
        policy.OnCompleted(r, workers[w], 0);
        workers[w].OnCompleted(r.PromptTokens, r.PromptTokens, reachedDecode: false);
        Assert.Equal(20, policy.IndexedBlocks(w));

        time.Advance(TimeSpan.FromSeconds(119));
        Assert.Equal(320, policy.Route(BaselineTestHelpers.Request("a", 20), workers).PredictedCachedTokens);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(0, policy.IndexedBlocks(w));
        Assert.Equal(0, policy.Route(BaselineTestHelpers.Request("a", 20), workers).PredictedCachedTokens);
    }

    [Fact]
    public void Route_ReRouteRefreshesLifetime()
    {
        var time = new FakeTimeProvider();
        var policy = new DynamoKvPolicy(time, DynamoKvOptions.Approximate);
        var workers = BaselineTestHelpers.Workers(1);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 5), workers);
        time.Advance(TimeSpan.FromSeconds(100));
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 5), workers);
        time.Advance(TimeSpan.FromSeconds(100)); // 200 s after the first, 100 s after the refresh
        Assert.Equal(5, policy.IndexedBlocks(0));
    }

    [Fact]
    public void Presets_PinDynamoDefaults()
    {
        var e = DynamoKvOptions.Events;
        Assert.Equal(1.0, e.OverlapScoreWeight);
        Assert.Equal(0.0, e.Temperature);
        Assert.True(e.UseKvEvents);
        var a = DynamoKvOptions.Approximate;
        Assert.False(a.UseKvEvents);
        Assert.Equal(TimeSpan.FromSeconds(120), a.Ttl);
        Assert.Equal(1 << 20, a.MaxTreeSize);
        Assert.Equal(0.8, a.PruneTargetRatio);
        var events = Assert.IsType<DynamoKvPolicy>(RoutingPolicies.Create("dynamo-kv", new RoutingPolicyContext()));
        Assert.NotNull(events.Precise);
        var approx = Assert.IsType<DynamoKvPolicy>(RoutingPolicies.Create("dynamo-kv-approx", new RoutingPolicyContext()));
        Assert.Null(approx.Precise);
        Assert.Equal("dynamo-kv-approx", approx.Name);
    }

    [Fact]
    public void Events_OverlapComesFromStoredEventsNotFromRouting()
    {
        var policy = new DynamoKvPolicy(new FakeTimeProvider());
        var workers = BaselineTestHelpers.Workers(2);
        var r = BaselineTestHelpers.Request("a", 8);
        int w = BaselineTestHelpers.Dispatch(policy, r, workers);
        policy.OnCompleted(r, workers[w], 0);
        workers[w].OnCompleted(r.PromptTokens, r.PromptTokens, reachedDecode: false);
        Assert.Equal(0, policy.Route(BaselineTestHelpers.Request("a", 8), workers).PredictedCachedTokens); // routing alone tells nothing

        // Worker 1 reports it holds the first 6 blocks.
        policy.Precise!.Apply(1, new KvEvent(1, KvEventType.Stored, r.BlockHashes[..6]));
        var d = policy.Route(BaselineTestHelpers.Request("a", 8), workers);
        Assert.Equal(1, d.WorkerIndex);
        Assert.Equal(6 * 16, d.PredictedCachedTokens);

        policy.Precise.Apply(1, new KvEvent(2, KvEventType.Removed, r.BlockHashes[3..6]));
        Assert.Equal(3 * 16, policy.Route(BaselineTestHelpers.Request("a", 8), workers).PredictedCachedTokens);
    }

    [Fact]
    public void Approx_OverMaxTreeSize_PrunesSoonestExpiringToTarget()
    {
        var time = new FakeTimeProvider();
        var policy = new DynamoKvPolicy(time, DynamoKvOptions.Approximate with { MaxTreeSize = 10, PruneTargetRatio = 0.8 });
        var workers = BaselineTestHelpers.Workers(1);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("old", 6), workers);
        time.Advance(TimeSpan.FromSeconds(1));
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("new", 6), workers); // 12 > 10: prune to 8
        Assert.Equal(8, policy.IndexedBlocks(0));
        Assert.Equal(6 * 16, policy.Route(BaselineTestHelpers.Request("new", 6), workers).PredictedCachedTokens);
        Assert.Equal(0, policy.Route(BaselineTestHelpers.Request("old", 6), workers).PredictedCachedTokens); // its head went first
    }

    [Fact]
    public void Temperature_SamplesAmongWorkersByNormalisedLogit()
    {
        var workers = BaselineTestHelpers.Workers(2);
        workers[0].OnDispatched(16 * 100); // worker 0: 100 more prefill blocks than worker 1
        var cold = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Events);
        var hot = new DynamoKvPolicy(new FakeTimeProvider(), DynamoKvOptions.Events with { Temperature = 1.0 }, random: new Random(3));
        int picksOfWorse = 0;
        for (int i = 0; i < 400; i++)
        {
            Assert.Equal(1, cold.Route(BaselineTestHelpers.Request("q", 4), workers).WorkerIndex);
            picksOfWorse += hot.Route(BaselineTestHelpers.Request("q", 4), workers).WorkerIndex == 0 ? 1 : 0;
        }

        // p(worse) = e^-1 / (1 + e^-1) = 0.269
        Assert.InRange(picksOfWorse, 80, 135);
    }

    [Fact]
    public void Knobs_OverrideByName()
    {
        var p = Assert.IsType<DynamoKvPolicy>(RoutingPolicies.Create("dynamo-kv:overlap_score_weight=2+router_temperature=0.5", new RoutingPolicyContext()));
        Assert.Equal(2.0, p.Options.OverlapScoreWeight);
        Assert.Equal(0.5, p.Options.Temperature);
        Assert.True(RoutingPolicies.IsKnown("dynamo-kv-approx:router_ttl_secs=600"));
        Assert.False(RoutingPolicies.IsKnown("dynamo-kv:router_prune_target_ratio=2"));
        Assert.False(RoutingPolicies.IsKnown("dynamo-kv:ttl=1"));
    }

    [Fact]
    public void Create_ByName_ReturnsFreshPolicy()
    {
        var p = RoutingPolicies.Create(DynamoKvPolicy.PolicyName, new RoutingPolicyContext());
        Assert.IsType<DynamoKvPolicy>(p);
        Assert.Contains(DynamoKvPolicy.PolicyName, RoutingPolicies.Names);
    }
}
