using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Tests.Routing.KvAware;

public class ApproximatePrefixIndexTests
{
    private readonly FakeTimeProvider _time = new();

    private ApproximatePrefixIndex NewIndex(int budget = 1 << 20, int ttlSeconds = 120) =>
        new(_time, TimeSpan.FromSeconds(ttlSeconds), budget, maxWorkers: 64);

    [Fact]
    public void Match_AllWorkersInOneWalk_CountsLeadingBlocksPerWorker()
    {
        var index = NewIndex();
        var shared = Chains.Of(1, 10);
        var longer = Chains.Extend(shared, 100, 20);
        index.Insert(0, shared, 1000);
        index.Insert(1, longer, 1000);
        index.Insert(3, Chains.Of(500, 5), 1000); // unrelated chain

        var matched = new int[4];
        int best = index.Match(Chains.Extend(longer, 900, 5), matched);

        Assert.Equal(30, best);
        Assert.Equal([10, 30, 0, 0], matched);
    }

    [Fact]
    public void Match_DivergentSuffix_StopsAtFirstDifferentBlock()
    {
        var index = NewIndex();
        var a = Chains.Extend(Chains.Of(1, 4), 10, 4);
        index.Insert(2, a, 1000);

        var matched = new int[3];
        // Same first 4 blocks, then different: chained hashes differ from block 4 on even if later ids repeat.
        var b = Chains.Extend(Chains.Extend(Chains.Of(1, 4), 77, 1), 11, 3);
        Assert.Equal(4, index.Match(b, matched));
        Assert.Equal(4, matched[2]);
    }

    [Fact]
    public void Match_AfterTtl_EntriesExpire()
    {
        var index = NewIndex(ttlSeconds: 10);
        var chain = Chains.Of(1, 8);
        index.Insert(0, chain, 1000);
        var matched = new int[1];

        _time.Advance(TimeSpan.FromSeconds(9));
        Assert.Equal(8, index.Match(chain, matched));

        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(0, index.Match(chain, matched));
        Assert.Equal(0, index.Count);
        Assert.Equal(8, index.Expirations);
    }

    [Fact]
    public void Insert_Retouch_RefreshesTtl()
    {
        var index = NewIndex(ttlSeconds: 10);
        var chain = Chains.Of(1, 8);
        index.Insert(0, chain, 1000);
        _time.Advance(TimeSpan.FromSeconds(8));
        index.Insert(0, chain, 1000);
        _time.Advance(TimeSpan.FromSeconds(8));
        Assert.Equal(8, index.Match(chain, new int[1]));
    }

    [Fact]
    public void Insert_OverWorkerCapacity_EvictsLeastRecentAndTailsBeforeHeads()
    {
        var index = NewIndex();
        var old = Chains.Of(1, 6);
        var fresh = Chains.Of(1000, 6);
        index.Insert(0, old, 8);
        _time.Advance(TimeSpan.FromSeconds(1));
        index.Insert(0, fresh, 8);

        Assert.Equal(8, index.CountFor(0));
        var matched = new int[1];
        Assert.Equal(6, index.Match(fresh, matched));
        // The old chain lost its two deepest blocks, not its head.
        Assert.Equal(2, index.Match(old, matched));
        // Another worker's capacity is independent.
        index.Insert(1, old, 8);
        Assert.Equal(8, index.CountFor(0));
        Assert.Equal(6, index.CountFor(1));
    }

    [Fact]
    public void Insert_FloodOfUniquePrompts_NeverExceedsGlobalBudget()
    {
        const int budget = 5_000;
        var index = NewIndex(budget);
        var rng = new Random(7);
        int maxSeen = 0;
        for (int r = 0; r < 4_000; r++)
        {
            int len = rng.Next(1, 200);
            index.Insert(rng.Next(64), Chains.Of(r * 1000L, len), 1_000_000);
            maxSeen = Math.Max(maxSeen, index.Count);
            Assert.True(index.Count <= budget, $"count {index.Count} exceeded budget after request {r}");
            Assert.True(index.DistinctBlocks <= index.Count);
        }

        Assert.Equal(budget, maxSeen);
        Assert.True(index.Evictions > 100_000);
        // The most recent chains survive a flood.
        var last = Chains.Of(3_999 * 1000L, 1);
        Assert.Equal(1, index.Match(last, new int[64]));
    }

    [Fact]
    public void Insert_OnceEveryWorkerIsAtItsCapacity_FreshPromptsForeverAllocateNothing()
    {
        // What a soak sees: the index fills to the workers' capacities, then every new chain evicts an old one in place.
        const int workers = 4, capacity = 1024;
        var index = NewIndex(ttlSeconds: 3600);
        var chains = Enumerable.Range(0, 22_000).Select(r => Chains.Of(r * 1000L, 1 + r % 9)).ToArray(); // made before measuring
        int next = 0;
        void Route(int requests)
        {
            for (int r = 0; r < requests; r++, next++)
            {
                index.Insert(next % workers, chains[next], capacity);
            }
        }

        Route(2_000); // fills every worker (5 blocks a request on average, 500 requests a worker)
        Assert.All(Enumerable.Range(0, workers), w => Assert.Equal(capacity, index.CountFor(w)));

        long before = GC.GetAllocatedBytesForCurrentThread();
        Route(20_000);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        Assert.Equal(workers * capacity, index.Count);
    }

    [Fact]
    public void Insert_SharedBlockOnManyWorkers_OneNodeManyResidencies()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 3);
        for (int w = 0; w < 64; w++)
        {
            index.Insert(w, chain, 100);
        }

        Assert.Equal(3, index.DistinctBlocks);
        Assert.Equal(192, index.Count);
        var matched = new int[64];
        index.Match(chain, matched);
        Assert.All(matched, m => Assert.Equal(3, m));
    }

    [Fact]
    public void RemoveWorker_ForgetsOnlyThatWorker()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 5);
        index.Insert(0, chain, 100);
        index.Insert(1, chain, 100);
        index.RemoveWorker(0);

        var matched = new int[2];
        index.Match(chain, matched);
        Assert.Equal([0, 5], matched);
        Assert.Equal(5, index.Count);
    }

    [Fact]
    public void Insert_WorkerBeyondBitset_IsIgnored()
    {
        var index = NewIndex();
        index.Insert(64, Chains.Of(1, 5), 100);
        Assert.Equal(0, index.Count);
    }
}
