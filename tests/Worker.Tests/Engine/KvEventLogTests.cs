using System.Text.Json;
using Worker.Contract;
using Worker.Engine;

namespace Worker.Tests.Engine;

public class KvEventLogTests
{
    [Fact]
    public void Append_SeqStrictlyIncreasing_ReadAfterReturnsOnlyNewer()
    {
        var log = new KvEventLog(16, 10);
        for (ulong i = 1; i <= 5; i++)
        {
            Assert.Equal((long)i, log.Append(KvEventType.Stored, [i], i - 1));
        }

        var events = new List<KvEvent>();
        int n = log.ReadAfter(2, events, out bool gap);

        Assert.False(gap);
        Assert.Equal(3, n);
        Assert.Equal(new long[] { 3, 4, 5 }, events.Select(e => e.Seq));
        Assert.All(events, e => Assert.Equal(16, e.BlockSize));
        // The engine's events are the worker protocol's own records: published as they are.
        Assert.Contains("\"type\":\"stored\"", JsonSerializer.Serialize(events[0], WorkerContractJson.Default.KvEvent), StringComparison.Ordinal);
    }

    [Fact]
    public void ReadAfter_OlderThanTheRing_ReportsGapAndStartsAtOldest()
    {
        var log = new KvEventLog(16, 4);
        for (ulong i = 1; i <= 10; i++)
        {
            log.Append(KvEventType.Stored, [i]);
        }

        var events = new List<KvEvent>();
        log.ReadAfter(3, events, out bool gap);

        Assert.True(gap);
        Assert.Equal(new long[] { 7, 8, 9, 10 }, events.Select(e => e.Seq));
        Assert.Equal(7, log.FirstSeq);

        events.Clear();
        log.ReadAfter(6, events, out gap);
        Assert.False(gap);
        Assert.Equal(4, events.Count);
    }

    [Fact]
    public void ReadAfter_SeqAheadOfTheLog_ReportsGap()
    {
        var log = new KvEventLog(16, 4);
        log.Append(KvEventType.Stored, [1]);

        var events = new List<KvEvent>();
        log.ReadAfter(50, events, out bool gap);

        Assert.True(gap);
        Assert.Equal(1, Assert.Single(events).Seq);
        events.Clear();
        log.ReadAfter(1, events, out gap);
        Assert.False(gap);
        Assert.Empty(events);
    }

    [Fact]
    public void Snapshot_AfterStoredRemovedCleared_ListsExactlyTheCachedHashes()
    {
        var log = new KvEventLog(16, 2);    // the snapshot does not depend on the ring still holding the events
        log.Append(KvEventType.Stored, [5, 3, 9]);
        log.Append(KvEventType.Removed, [3]);
        log.Append(KvEventType.PinDropped, [5]);
        var snap = log.Snapshot();
        Assert.Equal(3, snap.Seq);
        Assert.Equal(new ulong[] { 5, 9 }, snap.BlockHashes);

        log.Append(KvEventType.Cleared, []);
        log.Append(KvEventType.Stored, [1]);
        Assert.Equal(new ulong[] { 1 }, log.Snapshot().BlockHashes);
    }

    [Fact]
    public async Task WaitAsync_NoNewerEvent_CompletesWhenOneIsAppended()
    {
        var log = new KvEventLog(16, 10);
        log.Append(KvEventType.Stored, [1]);
        Assert.True(log.WaitAsync(0).IsCompleted);

        var wait = log.WaitAsync(1);
        Assert.False(wait.IsCompleted);
        log.Append(KvEventType.Removed, [1]);

        await wait.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task WaitAsync_Cancelled_ThrowsAndLeavesLogUsable()
    {
        var log = new KvEventLog(16, 10);
        using var cts = new CancellationTokenSource();
        var wait = log.WaitAsync(0, cts.Token);
        cts.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
        log.Append(KvEventType.Stored, [1]);
        Assert.True(log.WaitAsync(0).IsCompleted);
    }

    [Fact]
    public void Ring_HoldsTheNewestEvents_UntilEitherEventSlotsOrHashSlotsRunOut()
    {
        var log = new KvEventLog(16, capacity: 10, hashCapacity: 8);
        log.Append(KvEventType.Stored, [1, 2, 3]);
        log.Append(KvEventType.Stored, [4, 5, 6], 3);
        log.Append(KvEventType.Removed, [1, 2, 3]);   // 9 hashes > 8: the first event goes

        Assert.Equal(2, log.FirstSeq);
        Assert.Equal(2, log.Count);
        var events = new List<KvEvent>();
        log.ReadAfter(0, events, out bool gap);
        Assert.True(gap);
        Assert.Equal(new ulong[] { 4, 5, 6 }, events[0].BlockHashes);
        Assert.Equal(3UL, events[0].ParentBlockHash);
        Assert.Equal(KvEventType.Removed, events[1].Type);
        Assert.Null(events[1].ParentBlockHash);
        Assert.Equal(new ulong[] { 1, 2, 3 }, events[1].BlockHashes);
    }

    [Fact]
    public void ReadAfter_AnyMixOfSizesAcrossManyWraps_ReturnsExactlyTheNewestEventsAppended()
    {
        var log = new KvEventLog(16, capacity: 7, hashCapacity: 20);
        var all = new List<(KvEventType Type, ulong[] Hashes, ulong? Parent, KvMedium Medium)>();
        var random = new Random(25);
        ulong next = 1;
        for (int i = 0; i < 2000; i++)
        {
            var hashes = new ulong[random.Next(0, 21)];
            for (int k = 0; k < hashes.Length; k++)
            {
                hashes[k] = next++;
            }

            var type = (KvEventType)random.Next(0, 4);
            ulong? parent = random.Next(2) == 0 ? null : next + 1000;
            var medium = random.Next(3) == 0 ? KvMedium.Cpu : KvMedium.Gpu;
            Assert.Equal(i + 1, log.Append(type, hashes, parent, medium));
            all.Add((type, hashes, parent, medium));

            var events = new List<KvEvent>();
            log.ReadAfter(0, events, out _);
            Assert.True(events.Count is >= 1 and <= 7);
            Assert.True(events.Sum(e => e.BlockHashes!.Length) <= 20);
            Assert.Equal(i + 1, events[^1].Seq);
            foreach (var e in events)
            {
                var expected = all[(int)e.Seq - 1];
                Assert.Equal(expected.Type, e.Type);
                Assert.Equal(expected.Hashes, e.BlockHashes);
                Assert.Equal(expected.Parent, e.ParentBlockHash);
                Assert.Equal(expected.Medium, e.Medium);
            }

            // The window is as long as fits: one more (older) event would break a bound.
            long before = events[0].Seq - 1;
            if (before >= 1)
            {
                Assert.True(events.Count == 7 || events.Sum(e => e.BlockHashes!.Length) + all[(int)before - 1].Hashes.Length > 20);
            }
        }
    }

    [Fact]
    public void Append_MoreHashesThanTheHashRing_SplitsIntoChainedEvents_AndTheSnapshotHasThemAll()
    {
        var log = new KvEventLog(16, capacity: 10, hashCapacity: 4);
        ulong[] chain = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

        Assert.Equal(3, log.Append(KvEventType.Stored, chain, 99));

        var events = new List<KvEvent>();
        log.ReadAfter(2, events, out bool gap);
        Assert.False(gap);
        var last = Assert.Single(events);
        Assert.Equal(new ulong[] { 9, 10 }, last.BlockHashes);
        Assert.Equal(8UL, last.ParentBlockHash);   // the part before it ended at block 8
        Assert.Equal(chain, log.Snapshot().BlockHashes);
    }

    [Fact]
    public void Append_ForAnHourOfEvents_AllocatesNothing_SoTheLogNeverGrowsPastItsConstruction()
    {
        const int pool = 512;
        var log = new KvEventLog(16, capacity: 1000, expectedCachedBlocks: pool);
        var hashes = new ulong[pool];
        for (int i = 0; i < pool; i++)
        {
            hashes[i] = (ulong)(i * 7919 + 1);
        }

        var one = new ulong[1];
        var three = new ulong[3];
        void Churn(int events)
        {
            for (int i = 0; i < events; i++)
            {
                var batch = i % 2 == 0 ? one : three;
                for (int k = 0; k < batch.Length; k++)
                {
                    batch[k] = hashes[(i + k * 131) % pool];
                }

                log.Append(i % 3 == 0 ? KvEventType.Removed : KvEventType.Stored, batch, batch[0]);
            }
        }

        Churn(2000); // first calls (tiered JIT) outside the measurement
        long before = GC.GetAllocatedBytesForCurrentThread();
        Churn(60_000); // 16 events a second for an hour, 60 times the ring
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(1000, log.Count);
        Assert.Equal(4000, log.HashCapacity);
    }
}
