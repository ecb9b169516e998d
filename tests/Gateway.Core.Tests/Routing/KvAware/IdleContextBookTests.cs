using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Tests.Routing.KvAware;

public class IdleContextBookTests
{
    private readonly FakeTimeProvider _time = new();

    [Fact]
    public void Idle_CountsTheContextOnItsWorker_UntilTheWindowPasses()
    {
        var book = new IdleContextBook(_time, TimeSpan.FromSeconds(30), 100, 4);
        book.Idle("a", 1, 6_000);
        book.Idle("b", 1, 2_000);
        book.Idle("c", 2, 500);
        book.ExpireNow();
        Assert.Equal(8_000, book.IdleBlocks(1, null));
        Assert.Equal(500, book.IdleBlocks(2, null));
        Assert.Equal(0, book.IdleBlocks(0, null));

        _time.Advance(TimeSpan.FromSeconds(31));
        book.ExpireNow();
        Assert.Equal(0, book.IdleBlocks(1, null));
        Assert.Equal(0, book.Count);
    }

    [Fact]
    public void IdleBlocks_LeavesOutTheAskingSessionsOwnContext()
    {
        var book = new IdleContextBook(_time, TimeSpan.FromSeconds(30), 100, 4);
        book.Idle("a", 1, 6_000);
        book.Idle("b", 1, 2_000);
        Assert.Equal(2_000, book.IdleBlocks(1, "a"));
        Assert.Equal(8_000, book.IdleBlocks(1, "z"));
    }

    [Fact]
    public void Busy_TheNextTurnTakesTheContextOut_AndANewIdleReplacesTheOld()
    {
        var book = new IdleContextBook(_time, TimeSpan.FromSeconds(30), 100, 4);
        book.Idle("a", 1, 6_000);
        book.Busy("a");
        Assert.Equal(0, book.IdleBlocks(1, null));
        book.Idle("a", 1, 6_100);
        book.Idle("a", 3, 6_200); // moved: one entry per session
        Assert.Equal(0, book.IdleBlocks(1, null));
        Assert.Equal(6_200, book.IdleBlocks(3, null));
        Assert.Equal(1, book.Count);
    }

    [Fact]
    public void Idle_BoundedInSessions_OldestForgottenFirst()
    {
        var book = new IdleContextBook(_time, TimeSpan.FromSeconds(30), 2, 4);
        book.Idle("a", 0, 10);
        book.Idle("b", 0, 20);
        book.Idle("c", 0, 40);
        Assert.Equal(2, book.Count);
        Assert.Equal(60, book.IdleBlocks(0, null));
    }

    [Fact]
    public void WindowZero_RecordsNothing()
    {
        var book = new IdleContextBook(_time, TimeSpan.Zero, 100, 4);
        book.Idle("a", 0, 10);
        Assert.Equal(0, book.IdleBlocks(0, null));
    }
}
