using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

/// <summary>The block manager's account of what pins cost and save against plain LRU without pins (KvBlockManager.PinCost.cs).</summary>
public class KvBlockManagerPinCostTests
{
    private static (KvBlockManager Blocks, FakeTimeProvider Time) Create(int total)
    {
        var time = new FakeTimeProvider();
        return (new KvBlockManager(total, 16, 1.0, time, new KvEventLog(16, 1000)), time);
    }

    /// <summary>Runs a request with these hashes to completion (prefix hit, allocation, computed, freed).</summary>
    private static void Serve(KvBlockManager blocks, ulong[] hashes)
    {
        var table = new List<int>();
        int hits = blocks.AcquireTieredPrefix(hashes, hashes.Length, table, out _, out _);
        blocks.ShadowAdmitted(hashes, hashes.Length, hits);
        Assert.True(blocks.TryAllocate(hashes.Length - hits, table));
        blocks.MarkComputed(table, hashes, hits * 16, hashes.Length * 16);
        blocks.Free(table);
    }

    [Fact]
    public void PinThatPushesOutAContextPlainLruWouldHaveKept_CountsItsRecomputeAsCost_AndItsOwnHitAsSaved()
    {
        var (blocks, time) = Create(total: 4);
        var pinned = Chain(1, 2);
        var other = Chain(2, 2);
        Serve(blocks, pinned);
        blocks.Pin("a", pinned, TimeSpan.FromMinutes(10), 0, 1);
        time.Advance(TimeSpan.FromSeconds(1));
        Serve(blocks, other); // used after the pinned context: LRU without pins would evict the pinned one first
        Serve(blocks, Chain(3, 2)); // the pool is full: the LRU evicts `other`

        Serve(blocks, other);
        Assert.Equal(2, blocks.PinCostBlocksTotal);
        Assert.Equal(0, blocks.PinSavedBlocksTotal);

        Serve(blocks, pinned);
        Assert.Equal(2, blocks.PinSavedBlocksTotal);
    }

    [Fact]
    public void WithoutPins_TheEngineAndTheShadowAgree_NothingIsCounted()
    {
        var (blocks, _) = Create(total: 4);
        for (int round = 0; round < 3; round++)
        {
            for (int doc = 1; doc <= 3; doc++)
            {
                Serve(blocks, Chain(doc, 2)); // three contexts cycling through room for two: every one evicted
            }
        }

        Assert.Equal(0, blocks.PinCostBlocksTotal);
        Assert.Equal(0, blocks.PinSavedBlocksTotal);
    }

    [Fact]
    public void OnAWorkerWithAHostTier_NothingIsCounted()
    {
        var time = new FakeTimeProvider();
        var blocks = new KvBlockManager(4, 16, 1.0, time, new KvEventLog(16, 1000), hostBlocks: 8);
        var pinned = Chain(1, 2);
        var other = Chain(2, 2);
        Serve(blocks, pinned);
        blocks.Pin("a", pinned, TimeSpan.FromMinutes(10), 0, 1);
        Serve(blocks, other);
        Serve(blocks, Chain(3, 2));
        Serve(blocks, other);
        Serve(blocks, pinned);

        Assert.Equal(0, blocks.PinCostBlocksTotal);
        Assert.Equal(0, blocks.PinSavedBlocksTotal);
    }

    [Fact]
    public void AdmissionLimitBeyondThePrompt_StopsAtItsLastBlock()
    {
        var (blocks, _) = Create(total: 4);
        var prompt = Chain(1, 2);
        Serve(blocks, prompt);

        blocks.ShadowAdmitted(prompt, 10, 2); // a resumed sequence counts its output tokens too

        Assert.Equal(0, blocks.PinCostBlocksTotal);
        Assert.Equal(0, blocks.PinSavedBlocksTotal);
    }

    [Theory]
    [InlineData(false)] // the pin's TTL ran out
    [InlineData(true)] // the engine dropped it for an admission
    public void PinThatLapses_RejoinsTheLruAsOldAsItsLastUse_NotAsJustUsed(bool dropped)
    {
        var (blocks, time) = Create(total: 6);
        var pinned = Chain(1, 2);
        var newer = Chain(2, 2);
        Serve(blocks, pinned);
        blocks.Pin("a", pinned, TimeSpan.FromSeconds(dropped ? 600 : 5), 0, 1);
        time.Advance(TimeSpan.FromSeconds(1));
        Serve(blocks, newer); // used after the pinned context
        time.Advance(TimeSpan.FromSeconds(10));
        if (dropped)
        {
            var big = new List<int>();
            Assert.True(blocks.TryAllocate(5, big)); // 2 free + 2 idle are not enough: the pin is dropped
            Assert.Equal(0, blocks.CachedPrefixBlocks(pinned)); // its blocks went first, then the newer context's tail
            Assert.Equal(1, blocks.CachedPrefixBlocks(newer));
            return;
        }

        blocks.ExpirePins();
        var table = new List<int>();
        Assert.True(blocks.TryAllocate(4, table)); // 2 free + the 2 oldest idle blocks

        Assert.Equal(0, blocks.CachedPrefixBlocks(pinned)); // last used first: evicted first
        Assert.Equal(2, blocks.CachedPrefixBlocks(newer));
        Assert.Equal(10, blocks.EvictionAgeSeconds, 6); // time in the LRU since the TTL ran out (t = 5 .. 15)
    }
}
