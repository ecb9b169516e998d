using Gateway.Core.Agents;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Agents;

/// <summary>Where an idle context waits on a worker with a host tier.</summary>
public class TierPlacementTests
{
    private static TurnCompletion Turn(GapKind gap, int blocks = 6000, int pool = 8000, int host = 16000, double prefill = 5, double reload = 0.3) => new()
    {
        SessionId = "s",
        Tenant = "t",
        AgentKind = "claude-code",
        Outcome = new TurnOutcome(gap, gap == GapKind.Tool ? "Bash" : TurnClassifier.AnyTool),
        Worker = 1,
        Blocks = blocks,
        WorkerKvBlocks = pool,
        PrefillSeconds = prefill,
        WorkerHostKvBlocks = host,
        ReloadSeconds = reload,
    };

    [Fact]
    public void WithAHostTier_NoPinIsTaken_AndAPrefetchLandsBeforeThePredictedReturn()
    {
        var policy = new PredictiveRetentionPolicy(new FakeTimeProvider());
        var actions = new List<RetentionAction>();

        policy.OnTurnCompleted(Turn(GapKind.Tool, blocks: 1000), actions); // an HBM pin would pay on an HBM-only worker

        var a = Assert.Single(actions);
        Assert.Equal(RetentionActionKind.Prefetch, a.Kind);
        var prior = policy.Predictor.Predict(GapKind.Tool, "t", "claude-code", "Bash");
        Assert.Equal(Math.Round((prior.Quantile(TierPlacement.PrefetchQuantile) - 0.3) * 1000), a.PrefetchAfterMs, 0);
        Assert.True(a.PrefetchAfterMs < prior.Median * 1000);
        Assert.Equal(1, policy.Stats.HostRetains);
    }

    [Fact]
    public void WithoutAHostTier_AndHbmPinsOn_TheSameContextIsPinnedInHbm()
    {
        var policy = new PredictiveRetentionPolicy(new FakeTimeProvider(), new RetentionOptions { HbmPins = true });
        var actions = new List<RetentionAction>();

        policy.OnTurnCompleted(Turn(GapKind.Tool, blocks: 1000, host: 0), actions);

        var a = Assert.Single(actions);
        Assert.Equal(RetentionActionKind.Retain, a.Kind);
        Assert.Equal(RetentionTier.Hbm, a.Tier);
    }

    [Fact]
    public void ReloadAsSlowAsRecompute_IsNotWorthAPrefetch()
    {
        Assert.Null(TierPlacement.Decide(Turn(GapKind.Tool, reload: 5), new GapDistribution(Math.Log(9), 1.6, 1)));
    }
}
