using System.Text.Json;
using Worker.Contract;
using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

/// <summary>The host-memory tier of the block manager: write-back on eviction, tiered prefix walk with reload, host LRU and host pins.</summary>
public class HostKvTierTests
{
    private static (KvBlockManager Blocks, KvEventLog Log, FakeTimeProvider Time) Create(int total = 4, int host = 8, double maxPinned = 1.0)
    {
        var time = new FakeTimeProvider();
        var log = new KvEventLog(16, 1000);
        return (new KvBlockManager(total, 16, maxPinned, time, log, hostBlocks: host), log, time);
    }

    private static List<int> Compute(KvBlockManager blocks, ulong[] hashes)
    {
        var table = new List<int>();
        int hits = blocks.AcquireTieredPrefix(hashes, hashes.Length, table, out _, out _);
        Assert.True(blocks.TryAllocate(hashes.Length - hits, table));
        blocks.MarkComputed(table, hashes, hits * 16, hashes.Length * 16);
        return table;
    }

    private static List<KvEvent> Events(KvEventLog log)
    {
        var events = new List<KvEvent>();
        log.ReadAfter(0, events, out _);
        return events;
    }

    [Fact]
    public void Eviction_WithAHostTier_DemotesTheBlockInsteadOfDiscardingIt()
    {
        var (blocks, log, _) = Create(total: 4, host: 8);
        var a = Chain(1, 3);
        blocks.Free(Compute(blocks, a));
        blocks.Free(Compute(blocks, Chain(2, 3)));      // needs 2 of a's blocks back

        Assert.False(blocks.IsCached(a[2]));
        Assert.True(blocks.IsInHost(a[2]) && blocks.IsInHost(a[1]));
        Assert.Equal(3, blocks.TieredPrefixBlocks(a, out int host));
        Assert.Equal(2, host);
        var events = Events(log);
        var hbmRemoved = events.Single(e => e.Type == KvEventType.Removed && e.Medium == KvMedium.Gpu);
        var hostStored = events.Single(e => e.Type == KvEventType.Stored && e.Medium == KvMedium.Cpu);
        Assert.Equal(hbmRemoved.BlockHashes, hostStored.BlockHashes);
        Assert.Contains("\"medium\":\"cpu\"", JsonSerializer.Serialize(hostStored, WorkerContractJson.Default.KvEvent), StringComparison.Ordinal);
        Assert.Equal(new[] { a[1], a[2] }.Order(), log.Snapshot().HostBlockHashes!.Intersect(a).Order());
    }

    [Fact]
    public void Eviction_WithoutAHostTier_LosesTheBlock()
    {
        var (blocks, log, _) = Create(total: 4, host: 0);
        var a = Chain(1, 3);
        blocks.Free(Compute(blocks, a));
        blocks.Free(Compute(blocks, Chain(2, 3)));

        Assert.Equal(1, blocks.TieredPrefixBlocks(a, out int host));
        Assert.Equal(0, host);
        Assert.DoesNotContain(Events(log), e => e.Medium == KvMedium.Cpu);
    }

    [Fact]
    public void AcquireTieredPrefix_HostBlocksAreReloadedIntoFreshHbmBlocksAndStoredAgain()
    {
        var (blocks, log, _) = Create(total: 4, host: 8);
        var a = Chain(1, 3);
        blocks.Free(Compute(blocks, a));
        blocks.Free(Compute(blocks, Chain(2, 3)));
        long before = log.LastSeq;

        var table = new List<int>();
        int hits = blocks.AcquireTieredPrefix(a, 3, table, out int reloaded, out _);

        Assert.Equal(3, hits);
        Assert.Equal(2, reloaded);
        Assert.Equal(3, blocks.CachedPrefixBlocks(a));
        Assert.True(blocks.IsInHost(a[1]));                // inclusive: the host copy stays
        var restored = new List<KvEvent>();
        log.ReadAfter(before, restored, out _);
        var stored = restored.Single(e => e.Type == KvEventType.Stored && e.Medium == KvMedium.Gpu);
        Assert.Equal(new[] { a[1], a[2] }, stored.BlockHashes);
        Assert.Equal(a[0], stored.ParentBlockHash);
        Assert.Equal(2, blocks.ReloadedBlocksTotal);
    }

    [Fact]
    public void HostTier_Full_EvictsItsLeastRecentlyUsedEntryAndReportsItOnTheCpuMedium()
    {
        var (blocks, log, _) = Create(total: 2, host: 2);
        var a = Chain(1, 2);
        var b = Chain(2, 2);
        blocks.Free(Compute(blocks, a));
        blocks.Free(Compute(blocks, b));                   // a → host
        blocks.Free(Compute(blocks, Chain(3, 2)));         // b → host, a leaves the host

        Assert.False(blocks.IsInHost(a[0]) || blocks.IsInHost(a[1]));
        Assert.True(blocks.IsInHost(b[0]) && blocks.IsInHost(b[1]));
        var hostRemoved = Events(log).Where(e => e.Type == KvEventType.Removed && e.Medium == KvMedium.Cpu).SelectMany(e => e.BlockHashes!);
        Assert.Equal(a.Order(), hostRemoved.Order());
        Assert.Equal(2, blocks.Host!.EvictionsTotal);
    }

    [Fact]
    public void PinHost_HoldsTheContextInHostAgainstTheHostLruUntilItsTtl()
    {
        var (blocks, _, time) = Create(total: 2, host: 2);
        var a = Chain(1, 2);
        blocks.Free(Compute(blocks, a));
        Assert.Equal(2, blocks.PinHost("s", a, TimeSpan.FromSeconds(10), value: 1).PinnedBlocks);
        blocks.Free(Compute(blocks, Chain(2, 2)));         // a leaves HBM; host is full of pinned a: b's blocks cannot be written back

        Assert.True(blocks.IsInHost(a[0]) && blocks.IsInHost(a[1]));
        time.Advance(TimeSpan.FromSeconds(11));
        blocks.Free(Compute(blocks, Chain(3, 2)));         // the pin expired: the host LRU may take a's entries now
        Assert.False(blocks.IsInHost(a[0]));
    }

    [Fact]
    public void PinHost_DemotesTheHbmCopiesFirst()
    {
        var (blocks, _, _) = Create(total: 4, host: 8);
        var older = Chain(1, 2);
        var demoted = Chain(2, 2);
        blocks.Free(Compute(blocks, older));
        blocks.Free(Compute(blocks, demoted));
        blocks.PinHost("s", demoted, TimeSpan.FromSeconds(60), value: 1);

        blocks.Free(Compute(blocks, Chain(3, 2)));         // plain LRU would evict the older context

        Assert.Equal(2, blocks.CachedPrefixBlocks(older));
        Assert.Equal(0, blocks.CachedPrefixBlocks(demoted));
        Assert.Equal(2, blocks.TieredPrefixBlocks(demoted, out int host));
        Assert.Equal(2, host);
    }

    [Fact]
    public void ReleaseSession_DropsTheHostPinToo()
    {
        var (blocks, _, _) = Create(total: 4, host: 8);
        var a = Chain(1, 2);
        blocks.Free(Compute(blocks, a));
        blocks.PinHost("s", a, TimeSpan.FromSeconds(60), value: 1);

        Assert.Equal(2, blocks.Host!.PinnedBlocks);
        Assert.Equal(2, blocks.ReleaseSession("s"));
        Assert.Equal(0, blocks.Host.PinnedBlocks);
        Assert.Equal(0, blocks.Host.ActivePins);
    }

    [Fact]
    public void Prefetch_UsesOnlyFreeBlocks_DisplacingNoCachedContext()
    {
        var (blocks, _, _) = Create(total: 6, host: 8);
        var scratch = new List<int>();
        Assert.True(blocks.TryAllocate(1, scratch));        // an uncached block, freed later: the one free block
        var a = Chain(1, 3);
        blocks.Free(Compute(blocks, a));
        var other = Chain(2, 4);
        blocks.Free(Compute(blocks, other));                // a[1], a[2] → host; a[0] and other cached in HBM
        blocks.Free(scratch);

        var loaded = new List<int>();
        int n = blocks.Prefetch(a, maxBlocks: 10, loaded);

        Assert.Equal(1, n);                                 // a[1] into the free block; a[2] would have to evict
        Assert.Equal(2, blocks.CachedPrefixBlocks(a));
        Assert.Equal(4, blocks.CachedPrefixBlocks(other));  // nothing displaced
        Assert.Equal(0, blocks.UsedBlocks);
    }
}
