using Simulator.Traces;
using Simulator.Workload;

namespace Simulator.Tests.Workload;

public class BoundedIdealTests
{
    // Block size 1: a block is a token. Requests A = [a1 a2], B = [b1], then A and B again.
    private static readonly ulong[] A = [11, 12];
    private static readonly ulong[] B = [21];
    private static readonly List<ulong[]> Stream = [A, B, A, B];
    private static readonly List<int> Prompts = [2, 1, 2, 1];

    [Fact]
    public void Unbounded_EverySeenLeadingBlockHits()
    {
        // Repeats of A (2 tokens) and B (1 token) hit: 3 of 6 prompt tokens.
        Assert.Equal(0.5, BoundedIdeal.Unbounded(Stream, Prompts, 1), 9);
    }

    [Fact]
    public void Pooled_LargeEnough_EqualsUnbounded()
    {
        Assert.Equal(0.5, BoundedIdeal.Pooled(Stream, Prompts, 1, capacityBlocks: 3), 9);
    }

    [Fact]
    public void Pooled_TwoBlocks_KeepsTheSoonerReusedPrefix()
    {
        // With room for 2 blocks, MIN drops b1 (next used last) rather than a1/a2: A's repeat hits 2 tokens, B's misses.
        // An LRU of the same size would have evicted a1 and lost A's repeat too.
        Assert.Equal(2.0 / 6, BoundedIdeal.Pooled(Stream, Prompts, 1, capacityBlocks: 2), 9);
    }

    [Fact]
    public void Pooled_OneBlock_EvictsTheDeeperBlockFirst()
    {
        // a1 and a2 are next used by the same request: the deeper a2 goes, so A's repeat still hits its first token.
        Assert.Equal(1.0 / 6, BoundedIdeal.Pooled(Stream, Prompts, 1, capacityBlocks: 1), 9);
        Assert.Equal(0, BoundedIdeal.Pooled(Stream, Prompts, 1, capacityBlocks: 0), 9);
    }

    /// <summary>20 streams of 60 prompts, each a chain over one of <paramref name="roots"/> roots (block j of root r is r * 1000 + j, so prompts share prefixes).</summary>
    private static IEnumerable<(List<ulong[]> Blocks, List<int> Prompts)> RandomStreams(int seed, int roots, int maxBlocks)
    {
        var random = new Random(seed);
        for (int trial = 0; trial < 20; trial++)
        {
            var blocks = new List<ulong[]>();
            var prompts = new List<int>();
            for (int k = 0; k < 60; k++)
            {
                int root = random.Next(roots), len = 1 + random.Next(maxBlocks);
                blocks.Add([.. Enumerable.Range(0, len).Select(j => (ulong)(root * 1000 + j))]);
                prompts.Add(len * 16);
            }

            yield return (blocks, prompts);
        }
    }

    [Fact]
    public void Pooled_RandomStreams_NeverAboveUnboundedAndGrowsWithCapacity()
    {
        foreach (var (blocks, prompts) in RandomStreams(3, roots: 5, maxBlocks: 12))
        {
            double unbounded = BoundedIdeal.Unbounded(blocks, prompts, 16), previous = 0;
            foreach (int capacity in new[] { 0, 4, 8, 16, 32, 64 })
            {
                double pooled = BoundedIdeal.Pooled(blocks, prompts, 16, capacity);
                Assert.InRange(pooled, previous - 1e-12, unbounded + 1e-12);
                previous = pooled;
            }

            Assert.Equal(unbounded, BoundedIdeal.Pooled(blocks, prompts, 16, 64), 9); // 5 roots x 12 blocks fit
        }
    }

    [Fact]
    public void Workload_PooledIdeal_UsesTheFleetsKvBlocks()
    {
        // Two requests repeat each other's 4 blocks; a fleet of 1 worker with 2 blocks can keep only half the prefix.
        var reqs = new List<TraceRequest>
        {
            new() { T = 0, In = 64, Out = 2, BlockSize = 16, HashIds = HashIds.Of([1, 2, 3, 4]) },
            new() { T = 1, In = 64, Out = 2, BlockSize = 16, HashIds = HashIds.Of([1, 2, 3, 4]) },
        };
        var small = SimWorkload.Build(reqs, new Scenario { Workers = 1, KvBlocks = 2 });
        Assert.Equal(0.5, small.IdealPrefixHitRatio, 9);
        Assert.Equal(2, small.PoolBlocks);
        Assert.Equal(0.25, small.PooledIdealPrefixHitRatio, 9);

        var big = SimWorkload.Build(reqs, new Scenario { Workers = 2, KvBlocks = 1000 });
        Assert.Equal(2000, big.PoolBlocks);
        Assert.Equal(0.5, big.PooledIdealPrefixHitRatio, 9);
    }

    [Fact]
    public void PooledLru_TwoBlocks_EvictsTheLeastRecentAndLosesTheRepeat()
    {
        // Capacity 2: after B, LRU holds {b1, a1} (a2, touched before a1, is older) → A's repeat hits a1 only; then
        // A's touch leaves {a1, a2} and B misses. MIN did better on the same stream (2 of 6 tokens).
        Assert.Equal(1.0 / 6, BoundedIdeal.PooledLru(Stream, Prompts, 1, capacityBlocks: 2), 9);
        Assert.Equal(0.5, BoundedIdeal.PooledLru(Stream, Prompts, 1, capacityBlocks: 3), 9);
    }

    [Fact]
    public void PooledLru_RandomStreams_NeverAboveMin()
    {
        foreach (var (blocks, prompts) in RandomStreams(5, roots: 6, maxBlocks: 10))
        {
            foreach (int capacity in new[] { 0, 5, 10, 20, 40 })
            {
                Assert.True(BoundedIdeal.PooledLru(blocks, prompts, 16, capacity) <= BoundedIdeal.Pooled(blocks, prompts, 16, capacity) + 1e-12);
            }
        }
    }
}
