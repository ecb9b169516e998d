using Simulator.Simulation;

namespace Simulator.Tests.Simulation;

/// <summary>Why a resumed turn re-prefilled: routing (moved) or eviction, as the agent-tiers breakdown reports it.</summary>
public class ResumedStatsTests
{
    [Fact]
    public void Turn_RoutedAwayFromAWorkerThatStillHeldItsContext_IsMoved()
    {
        // 10,000 reusable tokens, all still on worker 0; the turn went to worker 1 and found 2,000 there.
        Assert.Equal(ReprefillCause.Moved, ResumedStats.CauseOf(worker: 1, previousWorker: 0, cachedOnArrival: 10_000, cached: 2_000, reusable: 10_000));
    }

    [Fact]
    public void Turn_RoutedElsewhereAfterItsContextLeftThePreviousWorker_IsEvicted_NotMoved()
    {
        // Worker 0 kept only the 2,000-token shared prefix; worker 1 served as much: staying would have saved nothing.
        Assert.Equal(ReprefillCause.EvictedBeforeArrival, ResumedStats.CauseOf(worker: 1, previousWorker: 0, cachedOnArrival: 2_000, cached: 2_000, reusable: 10_000));
    }

    [Fact]
    public void Turn_OnTheSameWorker_IsEvictedBeforeOrAfterArrival()
    {
        Assert.Equal(ReprefillCause.EvictedBeforeArrival, ResumedStats.CauseOf(worker: 0, previousWorker: 0, cachedOnArrival: 4_000, cached: 4_000, reusable: 10_000));
        Assert.Equal(ReprefillCause.EvictedAfterArrival, ResumedStats.CauseOf(worker: 0, previousWorker: 0, cachedOnArrival: 10_000, cached: 6_000, reusable: 10_000));
    }
}
