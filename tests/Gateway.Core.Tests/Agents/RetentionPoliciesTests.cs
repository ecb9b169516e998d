using Gateway.Core.Agents;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Agents;

public class RetentionPoliciesTests
{
    private static TurnCompletion Tool(string session, int worker = 0, int blocks = 1000, int poolBlocks = 20000, double prefill = 5, string tool = "Bash", bool ended = false) => new()
    {
        SessionId = session,
        Tenant = "t",
        AgentKind = "claude-code",
        Outcome = new TurnOutcome(GapKind.Tool, tool),
        Worker = worker,
        Blocks = blocks,
        WorkerKvBlocks = poolBlocks,
        PrefillSeconds = prefill,
        SessionEnded = ended,
    };

    [Theory]
    [InlineData("off", "off")]
    [InlineData("fixed:2", "fixed:2")]
    [InlineData("fixed:30", "fixed:30")]
    [InlineData("fixed:0.5", "fixed:0.5")]
    [InlineData("predictive", "predictive")]
    public void Create_KnownName_ReturnsPolicyWithThatName(string name, string expected)
    {
        Assert.Equal(expected, RetentionPolicies.Create(name, new FakeTimeProvider()).Name);
        Assert.True(RetentionPolicies.IsValid(name));
    }

    [Theory]
    [InlineData("fixed:")]
    [InlineData("fixed:-1")]
    [InlineData("fixed:abc")]
    [InlineData("always")]
    public void Create_BadName_Throws(string name)
    {
        Assert.False(RetentionPolicies.IsValid(name));
        Assert.Throws<ArgumentException>(() => RetentionPolicies.Create(name, new FakeTimeProvider()));
    }

    [Fact]
    public void SessionsThatNeverReturn_AreForgottenOldestFirst_AndScoredAsUnusedPins()
    {
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create("fixed:30", time, new RetentionOptions { HbmPins = true, MaxOpenGaps = 100 });
        var actions = new List<RetentionAction>();
        for (int i = 0; i < 1000; i++)
        {
            p.OnTurnCompleted(Tool($"s{i}", blocks: 10), actions);  // a pin each; none of them comes back
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(1000, p.Stats.Retains);
        Assert.Equal(900, p.Stats.Misses);                         // the 900 forgotten ones
        Assert.Equal(900 * 10 * 30, p.Stats.UnusedBlockSeconds, 6); // each held its whole TTL for nobody
        Assert.Equal(30, p.OnTurnArrived("s970").Seconds, 6);      // a recent one still closes normally
        Assert.False(p.OnTurnArrived("s5").Closed);                // a forgotten one is a first turn again
    }

    [Theory]
    [InlineData("off")]
    [InlineData("fixed:30")]
    [InlineData("predictive")]
    public void TurnFollowingTurnsServedElsewhere_SupersedesTheGap_WithoutObservationOrScore(string name)
    {
        // Replica A served model turn 3 (three assistant messages before it); turns 4 and 5 went to another gateway replica;
        // turn 6 arrives here 200 s later. The gap A opened spans three turns: neither an observation nor a hit or miss.
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create(name, time, new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("s") with { PriorTurns = 3 }, actions);
        time.Advance(TimeSpan.FromSeconds(200));

        var gap = p.OnTurnArrived("s", priorTurns: 6);

        Assert.False(gap.Closed);
        Assert.Equal(1, p.Stats.Superseded);
        Assert.Equal(0, p.Stats.GapsClosed);
        Assert.Equal(0, p.Stats.Hits + p.Stats.Misses + p.Stats.Uncovered);
        Assert.Equal(0, p.Stats.AbsLogErrorCount);
        Assert.Equal(0, p.Stats.PinnedBlockSeconds);
        Assert.False(p.OnTurnArrived("s", priorTurns: 7).Closed); // the gap is gone
    }

    [Theory]
    [InlineData(4)]  // the session's next turn
    [InlineData(1)]  // a client that compacted its history: fewer turns, still this session's next turn
    [InlineData(-1)] // unknown (completions endpoint, simulator)
    public void TurnThatCanBeTheNextOne_ClosesTheGapAsBefore(int priorTurns)
    {
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create("predictive", time, new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("s") with { PriorTurns = 3 }, actions);
        time.Advance(TimeSpan.FromSeconds(4));

        var gap = p.OnTurnArrived("s", priorTurns);

        Assert.True(gap.Closed);
        Assert.Equal(4, gap.Seconds, 3);
        Assert.Equal(0, p.Stats.Superseded);
        Assert.Equal(1, p.Stats.AbsLogErrorCount);
    }

    [Fact]
    public void Predictive_SupersededPin_FreesItsBudgetShare()
    {
        // Budget 0.4 of 20,000 blocks: one 7,000-block pin fits, a second on the same worker does not (equal value per block).
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create("predictive", time, new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a", blocks: 7000, prefill: 40) with { PriorTurns = 0 }, actions);
        p.OnTurnCompleted(Tool("b", blocks: 7000, prefill: 40) with { PriorTurns = 0 }, actions);
        Assert.Equal(1, p.Stats.Retains);

        p.OnTurnArrived("a", priorTurns: 2); // a's next turn went elsewhere: its pin is no longer this replica's to count
        actions.Clear();
        p.OnTurnCompleted(Tool("c", blocks: 7000, prefill: 40) with { PriorTurns = 0 }, actions);

        Assert.Equal(2, p.Stats.Retains);
        Assert.Contains(actions, a => a.Kind == RetentionActionKind.Retain && a.SessionId == "c");
    }

    [Fact]
    public void Off_NeverSendsHints_CountsUncoveredToolGaps()
    {
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create("off", time);
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("s"), actions);
        time.Advance(TimeSpan.FromSeconds(4));
        Assert.Equal(4, p.OnTurnArrived("s").Seconds, 3);
        Assert.Empty(actions);
        Assert.Equal(1, p.Stats.Uncovered);
        Assert.Equal(0, p.Stats.PinnedBlockSeconds);
    }

    [Fact]
    public void Fixed_ToolGap_RetainsForTtl_ScoresHitAndMiss()
    {
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create("fixed:2", time);
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a"), actions);
        Assert.Equal(new RetentionAction(RetentionActionKind.Retain, "a", 0, 2000, 5, 0), Assert.Single(actions));
        time.Advance(TimeSpan.FromSeconds(1));
        p.OnTurnArrived("a");
        p.OnTurnCompleted(Tool("a"), actions);
        time.Advance(TimeSpan.FromSeconds(9));
        p.OnTurnArrived("a");
        Assert.Equal(1, p.Stats.Hits);
        Assert.Equal(1, p.Stats.Misses);
        Assert.Equal(1000 * 1 + 1000 * 2, p.Stats.PinnedBlockSeconds, 3);
        Assert.Equal(1000 * 2, p.Stats.UnusedBlockSeconds, 3);
    }

    [Fact]
    public void Fixed_HumanGapOrSessionEnd_Releases()
    {
        var p = RetentionPolicies.Create("fixed:30", new FakeTimeProvider());
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a") with { Outcome = new TurnOutcome(GapKind.Human, "*") }, actions);
        p.OnTurnCompleted(Tool("b", ended: true), actions);
        Assert.All(actions, a => Assert.Equal(RetentionActionKind.Release, a.Kind));
        Assert.Equal(2, actions.Count);
    }

    [Fact]
    public void Predictive_BestTtl_MaximisesContinuumObjective()
    {
        var p = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true });
        var dist = new GapDistribution(Math.Log(9), 1.0, 100);
        var (ttl, prob) = p.BestTtl(dist, savedSeconds: 5, costPerSecond: 0.05);

        // Brute force on a fine grid: the chosen TTL's net benefit is within 2% of the best.
        double best = 0;
        for (double t = 0.5; t <= 300; t += 0.01)
        {
            best = Math.Max(best, dist.Cdf(t) * 5 - 0.05 * t);
        }

        Assert.True(ttl > 0);
        Assert.Equal(dist.Cdf(ttl), prob, 9);
        Assert.True(prob * 5 - 0.05 * ttl >= best * 0.98);

        // Memory dearer than any saving: no pin.
        Assert.Equal(0, p.BestTtl(dist, savedSeconds: 5, costPerSecond: 10).TtlSeconds);
    }

    [Fact]
    public void Predictive_LearnsShortAndLongTools_TtlFollowsTheirGaps()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, PerSessionLevel = false });
        var actions = new List<RetentionAction>();
        for (int i = 0; i < 60; i++)
        {
            p.OnTurnCompleted(Tool("s" + i, tool: "Read"), actions);
            time.Advance(TimeSpan.FromSeconds(2));
            p.OnTurnArrived("s" + i);
            p.OnTurnCompleted(Tool("u" + i, tool: "RunTests"), actions);
            time.Advance(TimeSpan.FromSeconds(40));
            p.OnTurnArrived("u" + i);
        }

        actions.Clear();
        p.OnTurnCompleted(Tool("x", tool: "Read"), actions);
        p.OnTurnCompleted(Tool("y", tool: "RunTests", worker: 1), actions);
        var read = actions.Single(a => a.SessionId == "x");
        var tests = actions.Single(a => a.SessionId == "y");
        Assert.Equal(RetentionActionKind.Retain, read.Kind);
        Assert.Equal(RetentionActionKind.Retain, tests.Kind);
        Assert.InRange(read.TtlMs, 2000, 10_000);
        Assert.InRange(tests.TtlMs, 40_000, 200_000);
        Assert.True(p.Stats.MeanAbsLogError < 1.0);
    }

    [Fact]
    public void Predictive_HumanGap_ReleasesInsteadOfPinning()
    {
        var p = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a") with { Outcome = new TurnOutcome(GapKind.Human, "*"), Blocks = 4000 }, actions);
        Assert.Equal(RetentionActionKind.Release, Assert.Single(actions).Kind);
    }

    [Fact]
    public void Predictive_Budget_EvictsLowestValuePerBlock_ForAMoreValuablePin()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, PinBudgetFraction = 0.1, MemoryCostWeight = 0.01 });
        var actions = new List<RetentionAction>();

        // Budget 2,000 of 20,000 blocks. A cheap pin (little prefill per block) fills most of it.
        p.OnTurnCompleted(Tool("cheap", blocks: 1500, prefill: 0.5), actions);
        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);
        actions.Clear();

        // A pin worth much more per block needs room: the cheap one is released.
        p.OnTurnCompleted(Tool("dear", blocks: 1000, prefill: 20), actions);
        Assert.Contains(new RetentionAction(RetentionActionKind.Release, "cheap", 0, 0, 0, 0), actions);
        Assert.Contains(actions, a => a.Kind == RetentionActionKind.Retain && a.SessionId == "dear");
        Assert.Equal(1, p.Stats.BudgetEvictions);
        actions.Clear();

        // A cheap pin cannot evict the dear one: skipped.
        p.OnTurnCompleted(Tool("cheap2", blocks: 1500, prefill: 0.5), actions);
        Assert.Equal(RetentionActionKind.Release, Assert.Single(actions).Kind);
        Assert.Equal(1, p.Stats.BudgetSkipped);

        // Other workers have their own budget.
        actions.Clear();
        p.OnTurnCompleted(Tool("elsewhere", worker: 1, blocks: 1500, prefill: 0.5), actions);
        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);
    }

    [Fact]
    public void Predictive_PinDroppedByTheWorker_FreesItsBudget_IsNotRenewed_AndTheReturnIsNotAHit()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, PinBudgetFraction = 0.1, MemoryCostWeight = 0.01, MaxRenewals = 1 });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("dear", blocks: 1500, prefill: 20), actions); // budget 2,000 of 20,000 blocks
        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);

        // A drop reported for another worker, or a session with no pin, changes nothing.
        p.OnPinDropped("dear", worker: 1);
        p.OnPinDropped("nobody", worker: 0);
        Assert.Equal(0, p.Stats.EngineDrops);

        time.Advance(TimeSpan.FromSeconds(2));
        p.OnPinDropped("dear", worker: 0);
        Assert.Equal(1, p.Stats.EngineDrops);
        Assert.Equal(1, p.Stats.Misses);
        Assert.Equal(1500 * 2, p.Stats.UnusedBlockSeconds, 6); // unused for the two seconds it was held
        p.OnPinDropped("dear", worker: 0); // reported twice: counted once
        Assert.Equal(1, p.Stats.EngineDrops);

        // Its budget share is free again: a cheap pin fits without evicting anything, and the dropped one is not renewed.
        actions.Clear();
        p.OnTurnCompleted(Tool("cheap", blocks: 1500, prefill: 0.5), actions);
        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);
        Assert.Equal(0, p.Stats.BudgetEvictions);
        actions.Clear();
        time.Advance(TimeSpan.FromSeconds(300));
        p.OnPinsExpiring(time.GetUtcNow(), actions);
        Assert.DoesNotContain(actions, a => a.SessionId == "dear");

        // The session comes back: not covered by a pin (it was dropped), and still learnt from.
        var gap = p.OnTurnArrived("dear");
        Assert.True(gap.Closed);
        Assert.False(gap.Pinned);
        Assert.Equal(0, p.Stats.Hits);
        Assert.Equal(1, p.Stats.Uncovered);
    }

    [Fact]
    public void Predictive_SessionEnd_ReleasesAndCountsUnusedPin()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a"), actions);
        Assert.Equal(RetentionActionKind.Retain, actions[0].Kind);
        time.Advance(TimeSpan.FromSeconds(1));
        p.OnTurnCompleted(Tool("a", ended: true), actions);
        Assert.Equal(RetentionActionKind.Release, actions[^1].Kind);
        Assert.Equal(1, p.Stats.Misses);
        Assert.Equal(1000, p.Stats.UnusedBlockSeconds, 3);
    }

    [Fact]
    public void Predictive_ContextLargerThanBudget_PinsLeadingPrefixOnly()
    {
        var p = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true, PinBudgetFraction = 0.25, MemoryCostWeight = 0.01 });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("big", blocks: 8000, poolBlocks: 20000, prefill: 8), actions);
        var a = Assert.Single(actions);
        Assert.Equal(RetentionActionKind.Retain, a.Kind);
        Assert.Equal(5000, a.Blocks);
        Assert.True(a.Value <= 8 * 5000 / 8000.0);
    }

    // Tool prior: median 9 s, p90 71 s (sigma 1.61). 1,000 of 20,000 blocks at weight 1 cost 0.05/s; 5 s of prefill saved.
    private static readonly GapDistribution ToolGaps = new GapPredictorOptions().ToolPrior;

    [Fact]
    public void Predictive_BestRenewal_ExtendsWhereTheConditionalHazardPays_NotInTheFarTail()
    {
        var p = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true });
        var (ttl, _) = p.BestTtl(ToolGaps, 5, 0.05);
        Assert.InRange(ttl, 1, 60);

        // At the first TTL the density only just paid for the memory; given the gap lasted that long, the hazard is
        // higher, so more time pays again, with the probability conditional on "not back yet".
        var (extra, prob) = p.BestRenewal(ToolGaps, ttl, 5, 0.05, 300 - ttl);
        Assert.True(extra > 0, $"ttl {ttl}");
        double survive = 1 - ToolGaps.Cdf(ttl);
        Assert.Equal((ToolGaps.Cdf(ttl + extra) - ToolGaps.Cdf(ttl)) / survive, prob, 6);
        Assert.True(prob > ToolGaps.Cdf(ttl + extra) - ToolGaps.Cdf(ttl));

        // Far in the tail the hazard has decayed below the memory price: let it lapse.
        Assert.Equal((0.0, 0.0), p.BestRenewal(ToolGaps, 250, 5, 0.05, 50));

        // A human gap (median 210 s): never worth a first pin nor, at any age, a renewal of a few seconds of prefill.
        var human = new GapPredictorOptions().HumanPrior;
        Assert.Equal(0, p.BestTtl(human, 5, 0.05).TtlSeconds);
        Assert.Equal(0, p.BestRenewal(human, 30, 5, 0.05, 270).ExtraSeconds);

        // Nothing left under the cap: no renewal.
        Assert.Equal(0, p.BestRenewal(ToolGaps, ttl, 5, 0.05, 0).ExtraSeconds);
    }

    [Fact]
    public void Predictive_PinRunningOut_IsRenewedByTheConditionalRule_AndCoversALateReturn()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, MaxRenewals = 1 });
        var actions = new List<RetentionAction>();
        var start = time.GetUtcNow();
        p.OnTurnCompleted(Tool("a"), actions);
        var pin = Assert.Single(actions);
        double ttl = pin.TtlMs / 1000.0;
        Assert.Equal(start.AddMilliseconds(pin.TtlMs), p.NextPinExpiry!.Value, TimeSpan.FromMilliseconds(1));

        // Not due yet: nothing.
        actions.Clear();
        p.OnPinsExpiring(time.GetUtcNow().AddSeconds(0.25), actions);
        Assert.Empty(actions);

        // A quarter second before it runs out: renewed from its expiry by the conditional optimum, value refreshed.
        time.Advance(TimeSpan.FromSeconds(ttl - 0.25));
        p.OnPinsExpiring(time.GetUtcNow().AddSeconds(0.25), actions);
        var renew = Assert.Single(actions);
        var (extra, prob) = p.BestRenewal(ToolGaps, pin.TtlMs / 1000.0, 5, 0.05, 300 - (pin.TtlMs / 1000.0));
        Assert.Equal(RetentionActionKind.Retain, renew.Kind);
        Assert.Equal(("a", 0, 1000), (renew.SessionId, renew.Worker, renew.Blocks));
        Assert.Equal((0.25 + extra) * 1000, renew.TtlMs, 1.0);
        Assert.Equal(prob * 5, renew.Value, 4);
        Assert.Equal(1, p.Stats.Renewals);
        Assert.True(p.NextPinExpiry > time.GetUtcNow().AddSeconds(extra));

        // The session comes back after the first TTL but within the renewal: a hit of one continuous pin.
        time.Advance(TimeSpan.FromSeconds(0.25 + (extra / 2)));
        var gap = p.OnTurnArrived("a");
        Assert.True(gap.Pinned);
        Assert.Equal((1, 0), (p.Stats.Hits, p.Stats.Misses));
        Assert.Equal(1000 * (ttl + (extra / 2)), p.Stats.PinnedBlockSeconds, 0);
        Assert.Equal(0, p.Stats.UnusedBlockSeconds);
        Assert.Null(p.NextPinExpiry);
    }

    [Fact]
    public void Predictive_RenewalOffByDefault_PinLapses_LateReturnIsAMiss()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true });
        Assert.Equal(0, new RetentionOptions().MaxRenewals);
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a"), actions);
        double ttl = Assert.Single(actions).TtlMs / 1000.0;
        Assert.Null(p.NextPinExpiry);
        actions.Clear();
        time.Advance(TimeSpan.FromSeconds(ttl - 0.25));
        p.OnPinsExpiring(time.GetUtcNow().AddSeconds(0.25), actions);
        Assert.Empty(actions);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(p.OnTurnArrived("a").Pinned);
        Assert.Equal((0, 1, 0), (p.Stats.Hits, p.Stats.Misses, p.Stats.Renewals));
    }

    [Fact]
    public void Predictive_HumanGapOrReleasedPin_IsNeverRenewed()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, MaxRenewals = 1 });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("h") with { Outcome = new TurnOutcome(GapKind.Human, "*") }, actions);
        p.OnTurnCompleted(Tool("a"), actions);
        p.OnTurnCompleted(Tool("a", ended: true), actions);
        Assert.Null(p.NextPinExpiry);
        actions.Clear();
        time.Advance(TimeSpan.FromSeconds(400));
        p.OnPinsExpiring(time.GetUtcNow(), actions);
        Assert.Empty(actions);
        Assert.Equal(0, p.Stats.Renewals);
    }

    [Fact]
    public void Predictive_RenewalStopsInTheTail_AndTheTotalStaysUnderMaxTtl()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, MaxRenewals = 1000 });
        var actions = new List<RetentionAction>();
        var start = time.GetUtcNow();
        p.OnTurnCompleted(Tool("a"), actions);
        double firstTtl = Assert.Single(actions).TtlMs / 1000.0;
        int rounds = 0;
        while (p.NextPinExpiry is { } at && rounds < 1000)
        {
            rounds++;
            time.Advance((at - time.GetUtcNow()) - TimeSpan.FromSeconds(0.25));
            actions.Clear();
            p.OnPinsExpiring(time.GetUtcNow().AddSeconds(0.25), actions);
        }

        Assert.InRange(p.Stats.Renewals, 1, 50);
        Assert.True(time.GetUtcNow() - start <= TimeSpan.FromSeconds(300), $"held until {(time.GetUtcNow() - start).TotalSeconds} s");

        // Never came back: the whole (renewed) pin is scored unused once the session is forgotten.
        time.Advance(TimeSpan.FromSeconds(1));
        p.OnTurnCompleted(Tool("a", ended: true), actions);
        Assert.Equal(1, p.Stats.Misses);
        Assert.Equal(p.Stats.PinnedBlockSeconds, p.Stats.UnusedBlockSeconds, 6);
        Assert.True(p.Stats.UnusedBlockSeconds > 1000 * (firstTtl + 1), $"{p.Stats.UnusedBlockSeconds}");
    }

    [Fact]
    public void Predictive_MaxRenewals_BoundsTheRenewalsOfOneGap_AndIsValidated()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, MaxRenewals = 2 });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a"), actions);
        for (int i = 0; i < 10 && p.NextPinExpiry is { } at; i++)
        {
            time.Advance((at - time.GetUtcNow()) - TimeSpan.FromSeconds(0.25));
            p.OnPinsExpiring(time.GetUtcNow().AddSeconds(0.25), actions);
        }

        Assert.Equal(2, p.Stats.Renewals);
        Assert.Null(p.NextPinExpiry);
        Assert.Throws<ArgumentOutOfRangeException>(() => new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, MaxRenewals = -1 }));
    }

    [Fact]
    public void Predictive_RenewedPin_KeepsItsBudgetShare_PastTheFirstTtl()
    {
        var time = new FakeTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { HbmPins = true, PinBudgetFraction = 0.1, MemoryCostWeight = 0.01, MaxRenewals = 1 });
        var actions = new List<RetentionAction>();

        // Budget 2,000 of 20,000 blocks: a renewed 1,500-block pin still holds it after its first TTL, so a cheaper
        // 1,000-block pin finds no room.
        p.OnTurnCompleted(Tool("a", blocks: 1500, prefill: 5), actions);
        double ttl = Assert.Single(actions).TtlMs / 1000.0;
        time.Advance(TimeSpan.FromSeconds(ttl - 0.25));
        actions.Clear();
        p.OnPinsExpiring(time.GetUtcNow().AddSeconds(0.25), actions);
        Assert.Equal(RetentionActionKind.Retain, Assert.Single(actions).Kind);
        time.Advance(TimeSpan.FromSeconds(0.5));

        actions.Clear();
        p.OnTurnCompleted(Tool("b", blocks: 1000, prefill: 0.5), actions);
        Assert.Equal(RetentionActionKind.Release, Assert.Single(actions).Kind);
        Assert.Equal(1, p.Stats.BudgetSkipped);
    }

    [Fact]
    public void OffAndFixed_NeverRenew()
    {
        var time = new FakeTimeProvider();
        foreach (var name in new[] { "off", "fixed:2" })
        {
            var policy = RetentionPolicies.Create(name, time, new RetentionOptions { HbmPins = true });
            var actions = new List<RetentionAction>();
            policy.OnTurnCompleted(Tool("a"), actions);
            Assert.Null(policy.NextPinExpiry);
            actions.Clear();
            policy.OnPinsExpiring(time.GetUtcNow().AddSeconds(10), actions);
            Assert.Empty(actions);
        }
    }

    [Fact]
    public void GapBook_ExpiryOrder_StaysBounded_WhenGapsReopenWithoutTicks()
    {
        var time = new FakeTimeProvider();
        var book = new GapBook(time, 1.0, 16, trackExpiry: true);
        for (int i = 0; i < 10_000; i++)
        {
            book.Open(Tool("s" + (i % 8)), 60, 1, double.NaN);
        }

        Assert.Equal(8, book.OpenGaps);
        Assert.True(book.ExpiryEntries <= (2 * 8) + 64 + 1, $"{book.ExpiryEntries}");
        var due = new List<GapBook.OpenGap>();
        book.TakeExpiring(time.GetUtcNow().AddSeconds(60), due);
        Assert.Equal(8, due.Count);
    }

    [Theory]
    [InlineData("off")]
    [InlineData("fixed:30")]
    [InlineData("predictive")]
    public void TheGapAfterAFirstTurn_IsKeptTheSingleTurnAge_ALaterTurnsGapTheFullAge(string name)
    {
        var time = new FakeTimeProvider();
        // No pin outlasts the single-turn age here (fixed:30 pins for 30 s; a longer pin: the next test).
        var p = RetentionPolicies.Create(name, time, new RetentionOptions
        {
            MaxSessionIdle = TimeSpan.FromMinutes(10),
            MaxSingleTurnIdle = TimeSpan.FromMinutes(1),
        });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("once", blocks: 10) with { SessionTurn = 1 }, actions);
        p.OnTurnCompleted(Tool("agent", blocks: 10) with { SessionTurn = 2 }, actions);
        p.OnTurnCompleted(Tool("unknown", blocks: 10), actions); // a host that does not count turns: the full age
        time.Advance(TimeSpan.FromSeconds(61));
        p.OnTurnCompleted(Tool("tick", blocks: 10) with { SessionTurn = 2 }, actions); // ages are checked on a write

        Assert.DoesNotContain(actions, a => a.Kind == RetentionActionKind.Retain && a.TtlMs > 60_000);
        Assert.False(p.OnTurnArrived("once").Closed);
        Assert.Equal(61, p.OnTurnArrived("agent").Seconds, 6);
        Assert.Equal(61, p.OnTurnArrived("unknown").Seconds, 6);
    }

    [Fact]
    public void AFirstTurnsPinLongerThanTheSingleTurnAge_KeepsItsGapAsLongAsThePin()
    {
        var time = new FakeTimeProvider();
        var p = RetentionPolicies.Create("fixed:120", time, new RetentionOptions
        {
            HbmPins = true,
            MaxSessionIdle = TimeSpan.FromMinutes(10),
            MaxSingleTurnIdle = TimeSpan.FromMinutes(1),
        });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("pinned", blocks: 10) with { SessionTurn = 1 }, actions);
        Assert.Contains(actions, a => a.Kind == RetentionActionKind.Retain && a.SessionId == "pinned");
        time.Advance(TimeSpan.FromSeconds(90));
        p.OnTurnCompleted(Tool("tick", blocks: 10) with { SessionTurn = 2 }, actions);

        var gap = p.OnTurnArrived("pinned");
        Assert.True(gap.Closed);
        Assert.True(gap.Pinned);
        Assert.Equal(1, p.Stats.Hits);
    }
}
