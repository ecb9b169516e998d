using Gateway.Core.Routing;
using Gateway.Core.Routing.Baselines;

namespace Gateway.Core.Tests.Routing.Baselines;

public class DynamoKvPolicyTests
{
    [Fact]
    public void Route_Overlap_LowersCostOnWorkerThatSawPrefix()
    {
        var policy = new DynamoKvPolicy(new ManualTime());
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
        var policy = new DynamoKvPolicy(new ManualTime());
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
        var policy = new DynamoKvPolicy(new ManualTime());
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
        var time = new ManualTime();
        var policy = new DynamoKvPolicy(time);
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
        var time = new ManualTime();
        var policy = new DynamoKvPolicy(time);
        var workers = BaselineTestHelpers.Workers(1);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 5), workers);
        time.Advance(TimeSpan.FromSeconds(100));
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 5), workers);
        time.Advance(TimeSpan.FromSeconds(100)); // 200 s after the first, 100 s after the refresh
        Assert.Equal(5, policy.IndexedBlocks(0));
    }

    [Fact]
    public void Create_ByName_ReturnsFreshPolicy()
    {
        var p = RoutingPolicies.Create(DynamoKvPolicy.PolicyName, new RoutingPolicyContext());
        Assert.IsType<DynamoKvPolicy>(p);
        Assert.Contains(DynamoKvPolicy.PolicyName, RoutingPolicies.Names);
    }
}
