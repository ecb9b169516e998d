using Gateway.Core.Agents;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Agents;

public class ResumedTurnPriorityTests
{
    private static TurnCompletion Turn(string session, GapKind gap) => new()
    {
        SessionId = session,
        Tenant = "t",
        Outcome = new TurnOutcome(gap, gap == GapKind.Tool ? "Bash" : TurnClassifier.AnyTool),
        Worker = 0,
        Blocks = 100,
        WorkerKvBlocks = 10_000,
        PrefillSeconds = 1,
    };

    [Fact]
    public void Decide_ToolGapWithinMax_ResumedWithEnginePriorityAndCredit()
    {
        var p = new ResumedTurnPriority(new ProgramPriorityOptions { EnginePriority = 3, QueueCredit = 1000, MaxGapSeconds = 60 });
        Assert.Equal(new TurnPriority(true, 3, 1000), p.Decide(new ClosedGap(true, GapKind.Tool, 59.9, false)));
        Assert.Equal(new TurnPriority(true, 3, 1000), p.Decide(new ClosedGap(true, GapKind.Tool, 60, true)));
    }

    [Fact]
    public void Decide_FirstTurnHumanGapOrLongToolGap_Fresh()
    {
        var p = new ResumedTurnPriority(new ProgramPriorityOptions { MaxGapSeconds = 60 });
        Assert.Equal(TurnPriority.Fresh, p.Decide(ClosedGap.None));
        Assert.Equal(TurnPriority.Fresh, p.Decide(new ClosedGap(true, GapKind.Human, 5, false)));
        Assert.Equal(TurnPriority.Fresh, p.Decide(new ClosedGap(true, GapKind.Tool, 60.5, false)));
        Assert.False(p.Decide(ClosedGap.None).Resumed);
    }

    [Fact]
    public void Decide_PinnedOnly_BoostsOnlyWhileThePinCoversTheGap()
    {
        var p = new ResumedTurnPriority(new ProgramPriorityOptions { PinnedOnly = true });
        Assert.True(p.Decide(new ClosedGap(true, GapKind.Tool, 8, Pinned: true)).Resumed);
        Assert.Equal(TurnPriority.Fresh, p.Decide(new ClosedGap(true, GapKind.Tool, 8, Pinned: false)));
    }

    [Fact]
    public void Defaults_EnginePriority1_Credit4096_MaxGap300s()
    {
        var o = new ResumedTurnPriority().Options;
        Assert.Equal(1, o.EnginePriority);
        Assert.Equal(4096, o.QueueCredit);
        Assert.Equal(300, o.MaxGapSeconds);
        Assert.False(o.PinnedOnly);
    }

    [Fact]
    public void Create_BadKnobs_Throw()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResumedTurnPriority(new ProgramPriorityOptions { EnginePriority = -1 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResumedTurnPriority(new ProgramPriorityOptions { EnginePriority = 1001 })); // worker protocol range
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResumedTurnPriority(new ProgramPriorityOptions { QueueCredit = double.NaN }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ResumedTurnPriority(new ProgramPriorityOptions { MaxGapSeconds = 0 }));
    }

    [Theory]
    [InlineData("off")]
    [InlineData("fixed:30")]
    [InlineData("predictive")]
    public void WithEveryRetentionPolicy_TurnAfterToolCallIsResumed_TurnAfterAnswerIsFresh(string policy)
    {
        // The retention policy tracks the session's gaps (even "off", which sends nothing): one source of truth.
        var time = new FakeTimeProvider();
        var retention = RetentionPolicies.Create(policy, time);
        var priority = new ResumedTurnPriority();
        var actions = new List<RetentionAction>();

        Assert.Equal(TurnPriority.Fresh, priority.Decide(retention.OnTurnArrived("s"))); // first turn
        retention.OnTurnCompleted(Turn("s", GapKind.Tool), actions);
        time.Advance(TimeSpan.FromSeconds(8));
        var gap = retention.OnTurnArrived("s");
        Assert.True(gap.AfterTool);
        Assert.Equal(8, gap.Seconds, 6);
        Assert.True(priority.Decide(gap).Resumed);

        retention.OnTurnCompleted(Turn("s", GapKind.Human), actions);
        time.Advance(TimeSpan.FromSeconds(8));
        Assert.Equal(TurnPriority.Fresh, priority.Decide(retention.OnTurnArrived("s")));
        Assert.False(retention.OnTurnArrived("s").Closed); // closed once
    }

    [Fact]
    public void ClosedGap_Pinned_OnlyWhileThePolicysPinCovered()
    {
        var time = new FakeTimeProvider();
        var retention = RetentionPolicies.Create("fixed:2", time);
        var actions = new List<RetentionAction>();
        retention.OnTurnCompleted(Turn("s", GapKind.Tool), actions);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(retention.OnTurnArrived("s").Pinned);
        retention.OnTurnCompleted(Turn("s", GapKind.Tool), actions);
        time.Advance(TimeSpan.FromSeconds(3));
        var late = retention.OnTurnArrived("s");
        Assert.True(late.AfterTool);
        Assert.False(late.Pinned);
    }
}
