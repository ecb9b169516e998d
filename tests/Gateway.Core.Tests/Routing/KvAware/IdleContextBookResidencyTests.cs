using Gateway.Core.Routing.KvAware;
using Gateway.Core.Tests.Routing;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>
/// The hot window counts an idle context only while its worker still holds it: with a precise index, an entry watches
/// its last prompt block (the first one the engine evicts), and a removed event takes the whole context out.
/// </summary>
public class IdleContextBookResidencyTests
{
    private readonly FakeTimeProvider _time = new();

    private static KvEvent Stored(long seq, params ulong[] hashes) => new(seq, KvEventType.Stored, hashes, null);

    private static KvEvent Removed(long seq, params ulong[] hashes) => new(seq, KvEventType.Removed, hashes, null);

    private (PreciseIndex Index, IdleContextBook Book) New()
    {
        var index = new PreciseIndex(_time, TimeSpan.FromSeconds(2), maxWorkers: 4);
        return (index, new IdleContextBook(_time, TimeSpan.FromSeconds(30), 100, 4, index));
    }

    [Fact]
    public void HeldBlocks_CountsAContext_OnlyWhileItsLastPromptBlockIsStillCached()
    {
        var (index, book) = New();
        index.Apply(1, Stored(1, 10, 11, 12)); // session a's prompt chain
        index.Apply(1, Stored(2, 20, 21));     // session b's
        book.Idle("a", 1, 6_000, lastBlockHash: 12);
        book.Idle("b", 1, 2_000, lastBlockHash: 21);
        Assert.Equal(8_000, book.HeldBlocks(1, null));

        index.Apply(1, Removed(3, 12)); // the engine evicts a's tail first
        Assert.Equal(2_000, book.HeldBlocks(1, null));
        Assert.Equal(8_000, book.IdleBlocks(1, null)); // the unconfirmed count still has both
    }

    [Fact]
    public void HeldBlocks_LeavesOutTheAskingSession_OnlyWhenItsOwnContextIsHeld()
    {
        var (index, book) = New();
        index.Apply(1, Stored(1, 12, 21));
        book.Idle("a", 1, 6_000, lastBlockHash: 12);
        book.Idle("b", 1, 2_000, lastBlockHash: 21);
        Assert.Equal(2_000, book.HeldBlocks(1, "a"));

        index.Apply(1, Removed(2, 12));
        Assert.Equal(2_000, book.HeldBlocks(1, "a")); // a's evicted context is not subtracted twice
    }

    [Fact]
    public void BusyExpiredOrForgotten_Entries_StopWatching()
    {
        var (index, book) = New();
        index.Apply(0, Stored(1, 12, 21, 31));
        book.Idle("a", 0, 100, lastBlockHash: 12);
        book.Idle("b", 0, 200, lastBlockHash: 21);
        book.Busy("a");
        Assert.Equal(200, book.HeldBlocks(0, null));

        book.Idle("b", 2, 250, lastBlockHash: 21); // b's next turn finished elsewhere: one entry per session
        Assert.Equal(0, book.HeldBlocks(0, null));
        Assert.Equal(0, index.WatchedHeld(0));

        book.Idle("c", 0, 300, lastBlockHash: 31);
        _time.Advance(TimeSpan.FromSeconds(31));
        book.ExpireNow();
        Assert.Equal(0, book.HeldBlocks(0, null));
        Assert.Equal(0, index.WatchedHeld(0));
    }

    [Fact]
    public void AContextWithoutAFullBlock_IsNeverHeld()
    {
        var (index, book) = New();
        book.Idle("a", 0, 1);
        Assert.Equal(0, book.HeldBlocks(0, null));
        Assert.Equal(1, book.IdleBlocks(0, null));
    }

    [Fact]
    public void WithoutAnIndex_HeldBlocks_IsTheUnconfirmedCount()
    {
        var book = new IdleContextBook(_time, TimeSpan.FromSeconds(30), 100, 4);
        book.Idle("a", 0, 700, lastBlockHash: 12);
        Assert.Equal(700, book.HeldBlocks(0, null));
    }
}
