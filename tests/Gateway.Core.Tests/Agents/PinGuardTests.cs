using Gateway.Core.Agents;

namespace Gateway.Core.Tests.Agents;

/// <summary>The guard that stops HBM pins on a worker where they lose against doing nothing.</summary>
public class PinGuardTests
{
    [Fact]
    public void WorkerWhosePinsKeepBeingDropped_GetsNoHbmPinsUntilItsShareDecays()
    {
        var guard = new PinGuard(new FakeTimeProvider());
        for (int i = 0; i < PinGuard.MinOutcomes; i++)
        {
            guard.Outcome(1, dropped: i % 2 == 0);
            guard.Outcome(2, dropped: false);
        }

        Assert.False(guard.Allows(1));
        Assert.True(guard.Allows(2));
        int refused = 1;
        while (!guard.Allows(1) && refused < 1000)
        {
            refused++;
        }

        Assert.InRange(refused, 2, 999); // probation: tried again after a bounded number of refusals
        Assert.Equal(refused, guard.Skipped);
    }

    [Fact]
    public void TooFewOutcomes_DoNotJudge()
    {
        var guard = new PinGuard(new FakeTimeProvider());
        guard.Outcome(1, dropped: true);
        guard.Outcome(1, dropped: true);

        Assert.True(guard.Allows(1));
    }

    [Fact]
    public void PinsThatCostOtherContextsMoreThanTheySave_StopUntilTheCostDecays()
    {
        var time = new FakeTimeProvider();
        var guard = new PinGuard(time);
        guard.Account(1, 0, 0); // baseline
        guard.Account(2, 0, 0);
        guard.Account(1, 1000, 400); // worker 1: pins pushed out 1,000 blocks that were needed again, kept 400 that were
        guard.Account(2, 1000, 1500);

        Assert.False(guard.Allows(1));
        Assert.True(guard.Allows(2));

        // Refusing sends no pins, so no new cost: once the decayed net loss (600) is under the floor pins are tried again.
        time.Advance(TimeSpan.FromSeconds(PinGuard.LedgerHalfLifeSeconds * 1.0));
        Assert.False(guard.Allows(1)); // 300
        time.Advance(TimeSpan.FromSeconds(PinGuard.LedgerHalfLifeSeconds * 0.5));
        Assert.True(guard.Allows(1)); // 212
    }

    [Fact]
    public void CountersAlreadyRunningWhenFirstSeen_AreABaselineNotACost()
    {
        var guard = new PinGuard(new FakeTimeProvider());
        guard.Account(1, 50_000, 0); // a worker that ran pins before this gateway started

        Assert.True(guard.Allows(1));
        Assert.Equal((0.0, 0.0), guard.Ledger(1));
    }

    [Fact]
    public void CountersThatWentDown_StartANewBaseline()
    {
        var guard = new PinGuard(new FakeTimeProvider());
        guard.Account(1, 10_000, 0);
        guard.Account(1, 300, 0); // the worker restarted

        Assert.True(guard.Allows(1));
        guard.Account(1, 900, 0);
        Assert.Equal(600, guard.Ledger(1).Cost, 6);
        Assert.False(guard.Allows(1));
    }

    [Fact]
    public void NetLossBelowTheFloor_DoesNotStopPins()
    {
        var guard = new PinGuard(new FakeTimeProvider());
        guard.Account(1, 0, 0);
        guard.Account(1, 10_000, 10_000 - (long)PinGuard.MinNetLossBlocks + 1); // costly, but they save about as much

        Assert.True(guard.Allows(1));
    }

    [Fact]
    public void UnreportedCounters_AreIgnored()
    {
        var guard = new PinGuard(new FakeTimeProvider());
        guard.Account(1, -1, -1);
        guard.Account(1, -1, -1);

        Assert.Equal((0.0, 0.0), guard.Ledger(1));
        Assert.True(guard.Allows(1));
    }

    private static TurnCompletion Turn(string session, long cost, long saved) => new()
    {
        SessionId = session,
        Tenant = "t",
        Outcome = new TurnOutcome(GapKind.Tool, "Bash"),
        Worker = 1,
        Blocks = 1000,
        WorkerKvBlocks = 8000,
        PrefillSeconds = 5,
        WorkerPinCostBlocks = cost,
        WorkerPinSavedBlocks = saved,
    };

    [Fact]
    public void Predictive_OnAWorkerWherePinsDisplaceMoreThanTheySave_ReleasesInsteadOfPinning()
    {
        var policy = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();

        policy.OnTurnCompleted(Turn("a", 0, 0), actions);
        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);

        actions.Clear();
        policy.OnTurnCompleted(Turn("b", 5000, 1000), actions);

        Assert.Equal(RetentionActionKind.Release, Assert.Single(actions).Kind);
        Assert.Equal(1, policy.Stats.GuardSkips);
    }

    [Fact]
    public void Predictive_WithTheGuardOff_PinsWhereTheGuardWouldRefuse()
    {
        var policy = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true, PinGuard = false });
        var actions = new List<RetentionAction>();
        policy.OnTurnCompleted(Turn("a", 0, 0), actions);
        actions.Clear();

        policy.OnTurnCompleted(Turn("b", 5000, 1000), actions);

        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);
        Assert.Equal(0, policy.Stats.GuardSkips);
    }

    [Fact]
    public void Predictive_ByDefault_LeavesAnHbmOnlyWorkerToItsLru_AndStillScoresTheGap()
    {
        var time = new FakeTimeProvider();
        var policy = new PredictiveRetentionPolicy(time);
        var actions = new List<RetentionAction>();

        policy.OnTurnCompleted(Turn("a", 0, 0), actions);
        time.Advance(TimeSpan.FromSeconds(8));
        var gap = policy.OnTurnArrived("a");

        Assert.Empty(actions); // no pin and no release: what `off` sends
        Assert.True(gap.Closed);
        Assert.False(gap.Pinned);
        Assert.Equal(0, policy.Stats.Retains);
        Assert.Equal(1, policy.Stats.Uncovered);
        Assert.Equal(1, policy.Stats.AbsLogErrorCount); // the predictor still learns the gap
    }
}
