using Gateway.Core.Routing;
using Gateway.Core.Routing.Baselines;
using Gateway.Core.Routing.KvAware;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.Baselines;

public class LlmdPolicyTests
{
    private static LlmdPolicy Policy(LlmdOptions? o = null, int seed = 1) => new(new FakeTimeProvider(), new Random(seed), o);

    private static LlmdScore[] Scores(LlmdPolicy p, RouteRequest r, List<WorkerInfo> workers) => p.Score(r, workers, new int[workers.Count]);

    [Fact]
    public void Presets_PinChartDefaults()
    {
        var d = LlmdOptions.Default;
        Assert.Equal((3.0, 2.0, 2.0, false), (d.PrefixWeight, d.QueueWeight, d.KvCacheUtilizationWeight, d.Precise));
        Assert.Equal(256, d.MaxPrefixBlocks);
        Assert.Equal(31_250, d.LruCapacityPerServer);
        var p = LlmdOptions.PreciseProfile;
        Assert.Equal((3.0, 2.0, 2.0, true), (p.PrefixWeight, p.QueueWeight, p.KvCacheUtilizationWeight, p.Precise));
        Assert.Null(Assert.IsType<LlmdPolicy>(RoutingPolicies.Create("llm-d", new RoutingPolicyContext())).Precise);
        Assert.NotNull(Assert.IsType<LlmdPolicy>(RoutingPolicies.Create("llm-d-precise", new RoutingPolicyContext())).Precise);
    }

    // Upstream queuedepth/queue_test.go "Different queue sizes" (10, 5, 0 → 0, 0.5, 1) and "Same queue sizes" (→ 1, 1).
    [Fact]
    public void Upstream_QueueScorer_MinMaxOverWaitingQueues()
    {
        var workers = BaselineTestHelpers.Workers(3);
        workers[0].ReportedWaiting = 10;
        workers[1].ReportedWaiting = 5;
        var s = Scores(Policy(), BaselineTestHelpers.Request("q", 2), workers);
        Assert.Equal([0.0, 0.5, 1.0], s.Select(x => x.Queue));

        var same = BaselineTestHelpers.Workers(2);
        same[0].ReportedWaiting = same[1].ReportedWaiting = 5;
        Assert.All(Scores(Policy(), BaselineTestHelpers.Request("q", 2), same), x => Assert.Equal(1.0, x.Queue));
    }

    // Upstream kvcacheutilization/kvcache_utilization_test.go "Different KV cache utilization": 0.8, 0.5, 0 → 0.2, 0.5, 1.
    [Fact]
    public void Upstream_KvCacheUtilizationScorer_OneMinusUsage()
    {
        var workers = BaselineTestHelpers.Workers(3);
        workers[0].KvUsage = 0.8;
        workers[1].KvUsage = 0.5;
        var s = Scores(Policy(), BaselineTestHelpers.Request("q", 2), workers);
        Assert.Equal(0.2, s[0].KvUtilization, 9);
        Assert.Equal(0.5, s[1].KvUtilization, 9);
        Assert.Equal(1.0, s[2].KvUtilization, 9);
    }

    // Upstream approximateprefix plugin_test.go: an empty index matches 0 of 2 blocks; after the pick is recorded
    // (PreRequest), the same prompt matches 2 of 2 on that worker only.
    [Fact]
    public void Upstream_ApproximatePrefix_RecordsPickAndMatchesIt()
    {
        var policy = Policy();
        var workers = BaselineTestHelpers.Workers(2);
        var r = BaselineTestHelpers.Request("aaaabbbb", 2);
        var s = Scores(policy, r, workers);
        Assert.All(s, x => Assert.Equal(0.0, x.Prefix));
        int w = BaselineTestHelpers.Dispatch(policy, r, workers);
        s = Scores(policy, BaselineTestHelpers.Request("aaaabbbb", 2), workers);
        Assert.Equal(1.0, s[w].Prefix);
        Assert.Equal(0.0, s[1 - w].Prefix);
        Assert.Equal(3 + 2 + 2, s[w].Total);
    }

    [Fact]
    public void ApproximatePrefix_OnlyFirstMaxPrefixBlocksCount()
    {
        var policy = Policy(LlmdOptions.Default with { MaxPrefixBlocks = 4 });
        var workers = BaselineTestHelpers.Workers(2);
        int w = BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("long", 10), workers);
        Assert.Equal(4, policy.IndexedBlocks(w));
        var s = Scores(policy, BaselineTestHelpers.Request("long", 10), workers);
        Assert.Equal(1.0, s[w].Prefix); // 4 of the 4 blocks hashed
    }

    // Upstream indexer: one LRU per server sized by its KV blocks (autoTune); adding in prompt order makes the head the
    // oldest entry, so a full LRU loses a prompt's head first.
    [Fact]
    public void ApproximatePrefix_LruSizedByWorkerCapacity_EvictsOldestFirst()
    {
        var policy = Policy();
        var workers = BaselineTestHelpers.Workers(1);
        workers[0].KvBlocksTotal = 6;
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("a", 4), workers);
        BaselineTestHelpers.Dispatch(policy, BaselineTestHelpers.Request("b", 4), workers);
        Assert.Equal(6, policy.IndexedBlocks(0));
        var s = Scores(policy, BaselineTestHelpers.Request("a", 4), workers);
        Assert.Equal(0.0, s[0].Prefix); // "a"'s first two blocks were evicted, so nothing leads
    }

    [Fact]
    public void MaxScorePicker_PrefixOutweighsQueueAtDefaultWeights()
    {
        var policy = Policy();
        var workers = BaselineTestHelpers.Workers(2);
        var r = BaselineTestHelpers.Request("p", 8);
        int holder = BaselineTestHelpers.Dispatch(policy, r, workers);
        workers[holder].ReportedWaiting = 3; // queue score 0 vs 1: −2; prefix 1 vs 0: +3
        Assert.Equal(holder, policy.Route(BaselineTestHelpers.Request("p", 8), workers).WorkerIndex);
        workers[holder].KvUsage = 0.6; // −1.2 more: 3 < 2 + 1.2
        Assert.Equal(1 - holder, policy.Route(BaselineTestHelpers.Request("p", 8), workers).WorkerIndex);
    }

    [Fact]
    public void MaxScorePicker_BreaksTiesAtRandom()
    {
        var policy = Policy(seed: 7);
        var workers = BaselineTestHelpers.Workers(4);
        var seen = new HashSet<int>();
        for (int i = 0; i < 200; i++)
        {
            seen.Add(policy.Route(BaselineTestHelpers.Request("t" + i, 2), workers).WorkerIndex);
        }

        Assert.Equal(4, seen.Count);
    }

    [Fact]
    public void Precise_ScoresConsecutiveConfirmedBlocksOverTotal()
    {
        var policy = Policy(LlmdOptions.PreciseProfile);
        var workers = BaselineTestHelpers.Workers(2);
        var r = BaselineTestHelpers.Request("doc", 8);
        BaselineTestHelpers.Dispatch(policy, r, workers);
        Assert.All(Scores(policy, r, workers), x => Assert.Equal(0.0, x.Prefix)); // no insert on route

        policy.Precise!.Apply(1, new KvEvent(1, KvEventType.Stored, r.BlockHashes[..6]));
        var s = Scores(policy, r, workers);
        Assert.Equal(0.75, s[1].Prefix);
        Assert.Equal(0.0, s[0].Prefix);
    }

    [Fact]
    public void Knobs_OverrideByName()
    {
        var p = Assert.IsType<LlmdPolicy>(RoutingPolicies.Create("llm-d-precise:prefix_weight=2+kv_cache_utilization_weight=1+queue_weight=1", new RoutingPolicyContext()));
        Assert.Equal((2.0, 1.0, 1.0, true), (p.Options.PrefixWeight, p.Options.KvCacheUtilizationWeight, p.Options.QueueWeight, p.Options.Precise));
        Assert.False(RoutingPolicies.IsKnown("llm-d:prefix_weight=-1"));
        Assert.False(RoutingPolicies.IsKnown("llm-d:weight=1"));
        Assert.False(RoutingPolicies.IsKnown("round-robin:x=1"));
    }
}
