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
        Assert.Equal("stored", events[0].TypeName);
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
}
