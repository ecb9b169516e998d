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
        Assert.Equal(expected, RetentionPolicies.Create(name, new ManualTimeProvider()).Name);
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
        Assert.Throws<ArgumentException>(() => RetentionPolicies.Create(name, new ManualTimeProvider()));
    }

    [Fact]
    public void SessionsThatNeverReturn_AreForgottenOldestFirst_AndScoredAsUnusedPins()
    {
        var time = new ManualTimeProvider();
        var p = RetentionPolicies.Create("fixed:30", time, new RetentionOptions { MaxOpenGaps = 100 });
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

    [Fact]
    public void Off_NeverSendsHints_CountsUncoveredToolGaps()
    {
        var time = new ManualTimeProvider();
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
        var time = new ManualTimeProvider();
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
        var p = RetentionPolicies.Create("fixed:30", new ManualTimeProvider());
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a") with { Outcome = new TurnOutcome(GapKind.Human, "*") }, actions);
        p.OnTurnCompleted(Tool("b", ended: true), actions);
        Assert.All(actions, a => Assert.Equal(RetentionActionKind.Release, a.Kind));
        Assert.Equal(2, actions.Count);
    }

    [Fact]
    public void Predictive_BestTtl_MaximisesContinuumObjective()
    {
        var p = new PredictiveRetentionPolicy(new ManualTimeProvider());
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
        var time = new ManualTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { PerSessionLevel = false });
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
        var p = new PredictiveRetentionPolicy(new ManualTimeProvider());
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("a") with { Outcome = new TurnOutcome(GapKind.Human, "*"), Blocks = 4000 }, actions);
        Assert.Equal(RetentionActionKind.Release, Assert.Single(actions).Kind);
    }

    [Fact]
    public void Predictive_Budget_EvictsLowestValuePerBlock_ForAMoreValuablePin()
    {
        var time = new ManualTimeProvider();
        var p = new PredictiveRetentionPolicy(time, new RetentionOptions { PinBudgetFraction = 0.1, MemoryCostWeight = 0.01 });
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
    public void Predictive_SessionEnd_ReleasesAndCountsUnusedPin()
    {
        var time = new ManualTimeProvider();
        var p = new PredictiveRetentionPolicy(time);
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
        var p = new PredictiveRetentionPolicy(new ManualTimeProvider(), new RetentionOptions { PinBudgetFraction = 0.25, MemoryCostWeight = 0.01 });
        var actions = new List<RetentionAction>();
        p.OnTurnCompleted(Tool("big", blocks: 8000, poolBlocks: 20000, prefill: 8), actions);
        var a = Assert.Single(actions);
        Assert.Equal(RetentionActionKind.Retain, a.Kind);
        Assert.Equal(5000, a.Blocks);
        Assert.True(a.Value <= 8 * 5000 / 8000.0);
    }
}
