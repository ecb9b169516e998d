using Gateway.Core.Routing.KvAware;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.KvAware;

public class PreciseIndexTests
{
    private readonly FakeTimeProvider _time = new();

    private PreciseIndex NewIndex() => new(_time, TimeSpan.FromSeconds(2), maxWorkers: 64);

    private static KvEvent Stored(long seq, ulong[] hashes) => new(seq, KvEventType.Stored, hashes, null);

    [Fact]
    public void Apply_StoredThenRemoved_TracksWorkerSet()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 6);
        Assert.Equal(KvApplyResult.Applied, index.Apply(0, Stored(1, chain[..4])));
        Assert.Equal(KvApplyResult.Applied, index.Apply(0, new KvEvent(2, KvEventType.Stored, chain[4..], chain[3])));
        var matched = new int[2];
        Assert.Equal(6, index.Match(chain, matched));

        Assert.Equal(KvApplyResult.Applied, index.Apply(0, new KvEvent(3, KvEventType.Removed, chain[3..4])));
        Assert.Equal(3, index.Match(chain, matched));
        Assert.Equal(0, matched[1]);
        Assert.Equal(3, index.LastSeq(0));
    }

    [Fact]
    public void Apply_PinDropped_IsIgnoredButAdvancesSeq()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 3);
        index.Apply(0, Stored(1, chain));
        Assert.Equal(KvApplyResult.Applied, index.Apply(0, new KvEvent(2, KvEventType.PinDropped, chain)));
        Assert.Equal(3, index.Match(chain, new int[1]));
        Assert.Equal(2, index.LastSeq(0));
    }

    [Fact]
    public void Apply_SeqGap_NeedsResyncUntilSnapshot()
    {
        var index = NewIndex();
        var a = Chains.Of(1, 3);
        var b = Chains.Of(100, 3);
        index.Apply(0, Stored(1, a));
        Assert.Equal(KvApplyResult.GapNeedsResync, index.Apply(0, Stored(5, b)));
        Assert.True(index.NeedsResync(0));
        Assert.Equal(KvApplyResult.AwaitingResync, index.Apply(0, Stored(6, b)));
        Assert.Equal(0, index.Match(b, new int[1]));

        // Snapshot at seq 6: the worker holds only b now.
        index.ApplySnapshot(0, 6, b);
        Assert.False(index.NeedsResync(0));
        Assert.Equal(0, index.Match(a, new int[1]));
        Assert.Equal(3, index.Match(b, new int[1]));
        Assert.Equal(KvApplyResult.Applied, index.Apply(0, new KvEvent(7, KvEventType.Removed, b[2..])));
        Assert.Equal(2, index.Match(b, new int[1]));
        Assert.Equal(1, index.ResyncsRequested);
    }

    [Fact]
    public void Apply_FirstEventNotOne_IsAGap()
    {
        var index = NewIndex();
        Assert.Equal(KvApplyResult.GapNeedsResync, index.Apply(3, Stored(40, Chains.Of(1, 2))));
        Assert.True(index.NeedsResync(3));
    }

    [Fact]
    public void Apply_DuplicateSeq_IsIgnored()
    {
        var index = NewIndex();
        var a = Chains.Of(1, 3);
        index.Apply(0, Stored(1, a));
        Assert.Equal(KvApplyResult.Duplicate, index.Apply(0, new KvEvent(1, KvEventType.Removed, a)));
        Assert.Equal(3, index.Match(a, new int[1]));
    }

    [Fact]
    public void Apply_SeqGoesBackwards_WorkerRestarted_SetReset()
    {
        var index = NewIndex();
        var old = Chains.Of(1, 4);
        var fresh = Chains.Of(50, 2);
        for (int s = 1; s <= 10; s++)
        {
            index.Apply(0, Stored(s, old));
        }

        index.Apply(1, Stored(1, old)); // another worker is untouched by worker 0's restart
        Assert.Equal(KvApplyResult.Reset, index.Apply(0, Stored(1, fresh)));
        var matched = new int[2];
        Assert.Equal(4, index.Match(old, matched));
        Assert.Equal([0, 4], matched);
        Assert.Equal(2, index.Match(fresh, new int[1]));
        Assert.Equal(1, index.LastSeq(0));
        Assert.False(index.NeedsResync(0));
    }

    [Fact]
    public void Apply_SeqBackwardsMidStream_ResetsAndAsksForSnapshot()
    {
        var index = NewIndex();
        var old = Chains.Of(1, 4);
        for (int s = 1; s <= 10; s++)
        {
            index.Apply(0, Stored(s, old));
        }

        // The new incarnation already emitted 1..4 before we reconnected: we missed them.
        Assert.Equal(KvApplyResult.GapNeedsResync, index.Apply(0, Stored(5, Chains.Of(9, 1))));
        Assert.Equal(0, index.CountFor(0));
        Assert.True(index.NeedsResync(0));
    }

    [Fact]
    public void Apply_Cleared_EmptiesWorker()
    {
        var index = NewIndex();
        var a = Chains.Of(1, 3);
        index.Apply(0, Stored(1, a));
        Assert.Equal(KvApplyResult.Reset, index.Apply(0, new KvEvent(2, KvEventType.Cleared, null)));
        Assert.Equal(0, index.Match(a, new int[1]));
        Assert.Equal(KvApplyResult.Applied, index.Apply(0, Stored(3, a)));
        Assert.Equal(3, index.Match(a, new int[1]));
    }

    [Fact]
    public void InsertSpeculative_VisibleForTtlThenExpires()
    {
        var index = NewIndex();
        var a = Chains.Of(1, 5);
        index.InsertSpeculative(2, a);
        var matched = new int[3];
        Assert.Equal(5, index.Match(a, matched));
        Assert.Equal(5, matched[2]);

        _time.Advance(TimeSpan.FromSeconds(2.5));
        Assert.Equal(0, index.Match(a, matched));

        // Once the stored event lands, the overlap is confirmed and no longer expires.
        index.InsertSpeculative(2, a);
        index.Apply(2, Stored(1, a));
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(5, index.Match(a, matched));
    }

    [Fact]
    public void Apply_OverPerWorkerCap_DropsAndCounts()
    {
        var index = new PreciseIndex(_time, TimeSpan.FromSeconds(2), maxBlocksPerWorker: 10, maxWorkers: 4);
        index.Apply(0, Stored(1, Chains.Of(1, 25)));
        Assert.Equal(10, index.CountFor(0));
        Assert.Equal(15, index.DroppedBlocks);
    }
}
