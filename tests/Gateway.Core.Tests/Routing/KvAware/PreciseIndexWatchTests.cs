using Gateway.Core.Routing.KvAware;
using Gateway.Core.Tests.Routing;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>Watched blocks of the precise index: a weight counts while the worker's events confirm it holds the block.</summary>
public class PreciseIndexWatchTests
{
    private readonly FakeTimeProvider _time = new();

    private PreciseIndex NewIndex() => new(_time, TimeSpan.FromSeconds(2), maxWorkers: 8);

    private static KvEvent Stored(long seq, params ulong[] hashes) => new(seq, KvEventType.Stored, hashes, null);

    private static KvEvent Removed(long seq, params ulong[] hashes) => new(seq, KvEventType.Removed, hashes, null);

    [Fact]
    public void Watch_CountsItsWeight_WhileTheWorkerHoldsTheBlock_AndNotAfterItIsRemoved()
    {
        var index = NewIndex();
        index.Apply(0, Stored(1, 10, 11, 12));
        index.Watch(0, 12, 500);
        Assert.Equal(500, index.WatchedHeld(0));

        index.Apply(0, Removed(2, 12));
        Assert.Equal(0, index.WatchedHeld(0));

        index.Apply(0, Stored(3, 12)); // stored again (another request prefilled it): counts again
        Assert.Equal(500, index.WatchedHeld(0));
    }

    [Fact]
    public void Watch_OfABlockNotYetStored_CountsOnceTheStoredEventArrives()
    {
        var index = NewIndex();
        index.Apply(0, Stored(1, 10));
        index.Watch(0, 11, 300);
        Assert.Equal(0, index.WatchedHeld(0));
        index.Apply(0, Stored(2, 11));
        Assert.Equal(300, index.WatchedHeld(0));
    }

    [Fact]
    public void Watch_IsPerWorker_AndAddsUpOnTheSamePair()
    {
        var index = NewIndex();
        index.Apply(0, Stored(1, 10));
        index.Apply(1, Stored(1, 10));
        index.Watch(0, 10, 100);
        index.Watch(0, 10, 50);
        Assert.Equal(150, index.WatchedHeld(0));
        Assert.Equal(0, index.WatchedHeld(1));

        index.Unwatch(0, 10, 100);
        Assert.Equal(50, index.WatchedHeld(0));
        index.Unwatch(0, 10, 50);
        index.Apply(0, Removed(2, 10));
        index.Apply(0, Stored(3, 10)); // nothing watched any more: nothing comes back
        Assert.Equal(0, index.WatchedHeld(0));
    }

    [Fact]
    public void SpeculativeEntries_DoNotCount_OnlyTheWorkersOwnEvents()
    {
        var index = NewIndex();
        index.InsertSpeculative(0, [10, 11]);
        index.Watch(0, 11, 200);
        Assert.Equal(0, index.WatchedHeld(0));
        Assert.False(index.Holds(0, 11));
    }

    [Fact]
    public void ClearedOrRestartedWorker_HoldsNothing_AndASnapshotRecountsTheWatches()
    {
        var index = NewIndex();
        index.Apply(0, Stored(1, 10, 11));
        index.Watch(0, 10, 100);
        index.Watch(0, 11, 200);
        Assert.Equal(300, index.WatchedHeld(0));

        index.Apply(0, new KvEvent(2, KvEventType.Cleared, [], null));
        Assert.Equal(0, index.WatchedHeld(0));

        index.ApplySnapshot(0, 5, [11, 12]);
        Assert.Equal(200, index.WatchedHeld(0));

        index.RemoveWorker(0);
        Assert.Equal(0, index.WatchedHeld(0));
    }
}
