using Worker.Contract;
using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

public class KvBlockManagerTests
{
    private static (KvBlockManager Blocks, KvEventLog Log, FakeTimeProvider Time) Create(int total = 8, double maxPinned = 1.0)
    {
        var time = new FakeTimeProvider();
        var log = new KvEventLog(16, 1000);
        return (new KvBlockManager(total, 16, maxPinned, time, log), log, time);
    }

    /// <summary>Allocates blocks for a prompt with these hashes, marks them computed and returns the table.</summary>
    private static List<int> Compute(KvBlockManager blocks, ulong[] hashes)
    {
        var table = new List<int>();
        int hits = blocks.AcquireCachedPrefix(hashes, hashes.Length, table);
        Assert.True(blocks.TryAllocate(hashes.Length - hits, table));
        blocks.MarkComputed(table, hashes, hits * 16, hashes.Length * 16);
        return table;
    }

    [Fact]
    public void AcquireCachedPrefix_SamePrefixTwice_SharesBlocksWithRefCounts()
    {
        var (blocks, _, _) = Create();
        var hashes = Chain(1, 3);
        var a = Compute(blocks, hashes);

        var b = new List<int>();
        int hits = blocks.AcquireCachedPrefix(hashes, 3, b);

        Assert.Equal(3, hits);
        Assert.Equal(a, b);
        Assert.All(a, block => Assert.Equal(2, blocks.RefCount(block)));
        Assert.Equal(3, blocks.UsedBlocks);
    }

    [Fact]
    public void AcquireCachedPrefix_DivergingSecondBlock_HitsOnlyTheSharedPrefix()
    {
        var (blocks, _, _) = Create();
        var first = Chain(1, 3);
        Compute(blocks, first);
        var other = new[] { first[0], Chain(2, 2, first[0])[0], Chain(2, 2, first[0])[1] };

        Assert.Equal(1, blocks.CachedPrefixBlocks(other));
        var table = new List<int>();
        Assert.Equal(1, blocks.AcquireCachedPrefix(other, 3, table));
        Assert.Equal(0, blocks.CachedPrefixBlocks(Chain(3, 2)));
    }

    [Fact]
    public void Free_SharedBlock_StaysReferencedUntilLastOwnerFrees()
    {
        var (blocks, _, _) = Create();
        var hashes = Chain(1, 2);
        var a = Compute(blocks, hashes);
        var b = new List<int>();
        blocks.AcquireCachedPrefix(hashes, 2, b);
        int block = a[0];

        blocks.Free(a);
        Assert.Equal(1, blocks.RefCount(block));
        Assert.Equal(2, blocks.UsedBlocks);
        Assert.Equal(0, blocks.EvictableBlocks);

        blocks.Free(b);
        Assert.Equal(0, blocks.RefCount(block));
        Assert.Equal(0, blocks.UsedBlocks);
        Assert.Equal(2, blocks.EvictableBlocks);
        Assert.Equal(2, blocks.CachedBlocks);
    }

    [Fact]
    public void TryAllocate_PoolFull_EvictsLeastRecentlyFreedFirstAndTailBlocksFirst()
    {
        var (blocks, log, _) = Create(total: 4);
        var older = Chain(1, 2);
        var newer = Chain(2, 2);
        var a = Compute(blocks, older);
        var b = Compute(blocks, newer);
        blocks.Free(a);
        blocks.Free(b);

        var table = new List<int>();
        Assert.True(blocks.TryAllocate(1, table));
        Assert.False(blocks.IsCached(older[1]));   // the older prompt's tail block goes first
        Assert.True(blocks.IsCached(older[0]));
        Assert.True(blocks.TryAllocate(1, table));
        Assert.False(blocks.IsCached(older[0]));
        Assert.True(blocks.IsCached(newer[0]) && blocks.IsCached(newer[1]));

        var events = new List<KvEvent>();
        log.ReadAfter(0, events, out _);
        var removed = events.Where(e => e.Type == KvEventType.Removed).SelectMany(e => e.BlockHashes!).ToArray();
        Assert.Equal(new[] { older[1], older[0] }, removed);
    }

    [Fact]
    public void EvictionAge_NothingEvictedYet_IsInfinite()
    {
        var (blocks, _, time) = Create(total: 4);
        blocks.Free(Compute(blocks, Chain(1, 2)));
        time.Advance(TimeSpan.FromSeconds(30));
        blocks.Free(Compute(blocks, Chain(2, 2))); // the never-cached blocks suffice: nothing leaves the cache

        Assert.Equal(0, blocks.EvictionsTotal);
        Assert.Equal(double.PositiveInfinity, blocks.EvictionAgeSeconds);
    }

    [Fact]
    public void EvictionAge_IsHowLongTheEvictedBlockSatIdle()
    {
        var (blocks, _, time) = Create(total: 1);
        blocks.Free(Compute(blocks, Chain(1, 1)));      // idle from t = 0
        time.Advance(TimeSpan.FromSeconds(10));
        var held = Compute(blocks, Chain(2, 1));         // evicts it at t = 10; the LRU is then empty

        Assert.Equal(1, blocks.EvictionsTotal);
        Assert.Equal(10, blocks.EvictionAgeSeconds, 6);
        blocks.Free(held);
    }

    [Fact]
    public void EvictionAge_OnceEvictionsStop_IsAtLeastTheAgeOfTheOldestIdleBlock()
    {
        var (blocks, _, time) = Create(total: 2);
        blocks.Free(Compute(blocks, Chain(1, 2)));
        time.Advance(TimeSpan.FromSeconds(10));
        blocks.Free(Compute(blocks, Chain(2, 1)));       // evicts doc 1's tail block, idle 10 s; its first block stays

        Assert.Equal(10, blocks.EvictionAgeSeconds, 6);
        time.Advance(TimeSpan.FromSeconds(100));         // no pressure: doc 1's first block has now survived 110 s
        Assert.Equal(110, blocks.EvictionAgeSeconds, 6);
    }

    [Fact]
    public void EvictionAge_OldEvictionsFadeWithTheHalfLife()
    {
        var (blocks, _, time) = Create(total: 1);
        blocks.Free(Compute(blocks, Chain(1, 1)));
        time.Advance(TimeSpan.FromSeconds(10));
        var y = Compute(blocks, Chain(2, 1));            // eviction of age 10 at t = 10
        blocks.Free(y);
        time.Advance(TimeSpan.FromSeconds(600));         // ten 60 s half-lives later
        var z = Compute(blocks, Chain(3, 1));            // eviction of age 600

        // (10 · 2^-10 + 600) / (2^-10 + 1): the old eviction weighs about a thousandth.
        Assert.InRange(blocks.EvictionAgeSeconds, 599, 600);
        blocks.Free(z);
    }

    [Fact]
    public void EvictionAge_TimePinnedDoesNotCount_TheBlockIsIdleFromWhenItsPinLapsed()
    {
        var (blocks, _, time) = Create(total: 1);
        var x = Chain(1, 1);
        blocks.Free(Compute(blocks, x));
        blocks.Pin("s", x, TimeSpan.FromSeconds(50), 0, 1);
        time.Advance(TimeSpan.FromSeconds(60));          // the pin lapsed at t = 50
        var held = Compute(blocks, Chain(2, 1));

        Assert.Equal(1, blocks.EvictionsTotal);
        Assert.Equal(10, blocks.EvictionAgeSeconds, 6);
        blocks.Free(held);
    }

    [Fact]
    public void TryAllocate_Hit_RemovesBlockFromLruSoItIsNotEvicted()
    {
        var (blocks, _, _) = Create(total: 4);
        var older = Chain(1, 2);
        var newer = Chain(2, 2);
        blocks.Free(Compute(blocks, older));
        blocks.Free(Compute(blocks, newer));

        var reuse = new List<int>();
        blocks.AcquireCachedPrefix(older, 2, reuse);     // touching the older prompt protects it
        var table = new List<int>();
        Assert.True(blocks.TryAllocate(2, table));

        Assert.True(blocks.IsCached(older[0]) && blocks.IsCached(older[1]));
        Assert.False(blocks.IsCached(newer[0]) || blocks.IsCached(newer[1]));
    }

    [Fact]
    public void TryAllocate_MoreThanAvailable_FailsAndChangesNothing()
    {
        var (blocks, _, _) = Create(total: 4);
        var held = Compute(blocks, Chain(1, 3));

        var table = new List<int>();
        Assert.False(blocks.TryAllocate(2, table));
        Assert.Empty(table);
        Assert.Equal(3, blocks.UsedBlocks);
        Assert.Equal(1, blocks.AvailableBlocks);
        Assert.Equal(3, held.Count);
    }

    [Fact]
    public void Pin_UntilTtlExpires_BlocksAreNotEvicted()
    {
        var (blocks, _, time) = Create(total: 4);
        var pinned = Chain(1, 2);
        blocks.Free(Compute(blocks, pinned));
        Assert.Equal(new RetainResult(2, 0), blocks.Pin("s", pinned, TimeSpan.FromSeconds(10), 0, 1));
        blocks.Free(Compute(blocks, Chain(2, 2)));

        var table = new List<int>();
        Assert.True(blocks.TryAllocate(2, table));           // takes the unpinned prompt's blocks
        Assert.True(blocks.IsCached(pinned[0]) && blocks.IsCached(pinned[1]));
        blocks.Free(table);

        time.Advance(TimeSpan.FromSeconds(9));
        blocks.ExpirePins();
        Assert.Equal(2, blocks.PinnedBlocks);

        time.Advance(TimeSpan.FromSeconds(2));
        blocks.ExpirePins();
        Assert.Equal(0, blocks.PinnedBlocks);
        Assert.Equal(0, blocks.ActivePins);
        Assert.Equal(0, blocks.PinsDroppedTotal);                   // expiry is not a drop
        Assert.Equal(1, blocks.PinsExpiredTotal);
        Assert.True(blocks.TryAllocate(4, table));
        Assert.False(blocks.IsCached(pinned[0]));
    }

    [Fact]
    public void ReleaseSession_PinnedBlocks_BecomeEvictable()
    {
        var (blocks, _, _) = Create(total: 4);
        var pinned = Chain(1, 2);
        blocks.Free(Compute(blocks, pinned));
        blocks.Pin("s", pinned, TimeSpan.FromHours(1), 0, 1);
        Assert.Equal(2, blocks.AvailableBlocks);

        Assert.Equal(2, blocks.ReleaseSession("s"));

        Assert.Equal(4, blocks.AvailableBlocks);
        Assert.Equal(0, blocks.ReleaseSession("s"));
    }

    [Fact]
    public void ReleaseHashes_RemovesJustThoseBlocksFromThePin()
    {
        var (blocks, _, _) = Create(total: 8);
        var pinned = Chain(1, 3);
        blocks.Free(Compute(blocks, pinned));
        blocks.Pin(null, pinned, TimeSpan.FromHours(1), 0, 1);

        Assert.Equal(1, blocks.ReleaseHashes([pinned[2]]));

        Assert.True(blocks.IsPinned(pinned[0]));
        Assert.False(blocks.IsPinned(pinned[2]));
        Assert.Equal(2, blocks.PinnedBlocks);
    }

    [Fact]
    public void Pin_SameSessionAgain_ReplacesThePreviousPin()
    {
        var (blocks, _, _) = Create(total: 8);
        var first = Chain(1, 2);
        var second = Chain(2, 3);
        blocks.Free(Compute(blocks, first));
        blocks.Free(Compute(blocks, second));

        blocks.Pin("s", first, TimeSpan.FromHours(1), 0, 1);
        blocks.Pin("s", second, TimeSpan.FromHours(1), 0, 1);

        Assert.Equal(1, blocks.ActivePins);
        Assert.Equal(3, blocks.PinnedBlocks);
        Assert.False(blocks.IsPinned(first[0]));
    }

    [Fact]
    public void Pin_OnlyTheCachedLeadingPrefixIsPinned()
    {
        var (blocks, _, _) = Create(total: 8);
        var hashes = Chain(1, 4);
        blocks.Free(Compute(blocks, hashes[..2]));

        Assert.Equal(2, blocks.Pin("s", hashes, TimeSpan.FromHours(1), 0, 1).PinnedBlocks);
        Assert.Equal(0, blocks.Pin("t", Chain(9, 2), TimeSpan.FromHours(1), 0, 1).PinnedBlocks);
    }

    [Fact]
    public void TryAllocate_UnderPressure_DropsLowestValuePinFirstAndReportsIt()
    {
        var (blocks, log, _) = Create(total: 6);
        var low = Chain(1, 2);
        var mid = Chain(2, 2);
        var high = Chain(3, 2);
        blocks.Free(Compute(blocks, low));
        blocks.Free(Compute(blocks, mid));
        blocks.Free(Compute(blocks, high));
        blocks.Pin("high", high, TimeSpan.FromHours(1), priority: 0, value: 30);
        blocks.Pin("low", low, TimeSpan.FromHours(1), priority: 5, value: 10);
        blocks.Pin("mid", mid, TimeSpan.FromHours(1), priority: 0, value: 20);
        Assert.Equal(0, blocks.AvailableBlocks);

        var table = new List<int>();
        Assert.True(blocks.TryAllocate(3, table));     // needs two pins' worth: low, then mid

        Assert.Equal(2, blocks.PinsDroppedTotal);
        Assert.Equal(2, blocks.PinnedIdleBlocks);
        Assert.True(blocks.IsPinned(high[0]) && blocks.IsPinned(high[1]));
        Assert.False(blocks.IsPinned(low[0]));
        Assert.False(blocks.IsPinned(mid[0]));
        var events = new List<KvEvent>();
        log.ReadAfter(0, events, out _);
        var drops = events.Where(e => e.Type == KvEventType.PinDropped).ToList();
        Assert.Equal(2, drops.Count);
        Assert.Equal(low, drops[0].BlockHashes);
        Assert.Equal(mid, drops[1].BlockHashes);
    }

    [Fact]
    public void TryAllocate_EvenAllPinsWouldNotSuffice_DropsNothing()
    {
        var (blocks, _, _) = Create(total: 4);
        var pinned = Chain(1, 1);
        blocks.Free(Compute(blocks, pinned));
        blocks.Pin("s", pinned, TimeSpan.FromHours(1), 0, 1);
        var held = Compute(blocks, Chain(2, 2));

        var table = new List<int>();
        Assert.Equal(1, blocks.PinnedIdleBlocks);
        Assert.False(blocks.TryAllocate(3, table));

        Assert.Equal(0, blocks.PinsDroppedTotal);
        Assert.True(blocks.IsPinned(pinned[0]));
        Assert.Equal(2, held.Count);
    }

    [Fact]
    public void Pin_OverMaxPinnedFraction_DropsLowerValuePinsThenCutsTheTail()
    {
        var (blocks, log, _) = Create(total: 10, maxPinned: 0.4);   // at most 4 pinned blocks
        var low = Chain(1, 3);
        var big = Chain(2, 5);
        blocks.Free(Compute(blocks, low));
        blocks.Free(Compute(blocks, big));
        Assert.Equal(3, blocks.Pin("low", low, TimeSpan.FromHours(1), 0, value: 1).PinnedBlocks);

        var result = blocks.Pin("big", big, TimeSpan.FromHours(1), 0, value: 5);

        Assert.Equal(new RetainResult(4, 1), result);
        Assert.Equal(4, blocks.PinnedBlocks);
        Assert.True(blocks.IsPinned(big[3]));
        Assert.False(blocks.IsPinned(big[4]));
        Assert.Equal(1, blocks.PinsDroppedTotal);
        Assert.Equal(KvEventType.PinDropped, Last(log).Type);

        // A pin worth less than what is held cannot displace it: it gets what room is left (none).
        var small = Chain(3, 1);
        blocks.Free(Compute(blocks, small));
        Assert.Equal(new RetainResult(0, 0), blocks.Pin("small", small, TimeSpan.FromHours(1), 0, value: 0.5));
        Assert.Equal(4, blocks.PinnedBlocks);
    }

    [Fact]
    public void MarkComputed_NewBlocks_StoredEventsCarryParentHash()
    {
        var (blocks, log, _) = Create();
        var hashes = Chain(1, 3);
        var table = new List<int>();
        Assert.True(blocks.TryAllocate(3, table));

        blocks.MarkComputed(table, hashes, 0, 20);      // block 0 complete
        blocks.MarkComputed(table, hashes, 20, 48);     // blocks 1 and 2

        var events = new List<KvEvent>();
        log.ReadAfter(0, events, out _);
        Assert.Equal(2, events.Count);
        Assert.Equal(KvEventType.Stored, events[0].Type);
        Assert.Null(events[0].ParentBlockHash);
        Assert.Equal(new[] { hashes[0] }, events[0].BlockHashes);
        Assert.Equal(hashes[0], events[1].ParentBlockHash);
        Assert.Equal(new[] { hashes[1], hashes[2] }, events[1].BlockHashes);
    }

    [Fact]
    public void MarkComputed_HashAlreadyCachedElsewhere_KeepsTheDuplicatePrivate()
    {
        var (blocks, log, _) = Create();
        var hashes = Chain(1, 2);
        var a = new List<int>();
        var b = new List<int>();
        Assert.True(blocks.TryAllocate(2, a));
        Assert.True(blocks.TryAllocate(2, b));
        blocks.MarkComputed(a, hashes, 0, 32);
        long seq = log.LastSeq;
        blocks.MarkComputed(b, hashes, 0, 32);

        Assert.Equal(seq, log.LastSeq);
        Assert.Equal(2, blocks.CachedBlocks);
        blocks.Free(b);
        Assert.Equal(0, blocks.EvictableBlocks);   // b's private duplicates went back to the never-cached free pool
        Assert.Equal(6, blocks.AvailableBlocks);
    }

    [Fact]
    public void Clear_DropsPinsAndForgetsHashes_OneClearedEvent()
    {
        var (blocks, log, _) = Create();
        var hashes = Chain(1, 2);
        blocks.Free(Compute(blocks, hashes));
        blocks.Pin("s", hashes, TimeSpan.FromHours(1), 0, 1);

        blocks.Clear();

        Assert.Equal(0, blocks.CachedBlocks);
        Assert.Equal(0, blocks.PinnedBlocks);
        Assert.Equal(8, blocks.AvailableBlocks);
        Assert.Equal(KvEventType.Cleared, Last(log).Type);
        Assert.Empty(log.Snapshot().BlockHashes!);
    }

    private static KvEvent Last(KvEventLog log)
    {
        var events = new List<KvEvent>();
        log.ReadAfter(log.LastSeq - 1, events, out _);
        return events[^1];
    }
}
