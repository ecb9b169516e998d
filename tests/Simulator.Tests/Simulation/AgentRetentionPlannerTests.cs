using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;
using static Simulator.Tests.Simulation.AgentTurns;

namespace Simulator.Tests.Simulation;

public class AgentRetentionPlannerTests
{
    // One worker of 200 blocks. Session s: a 100-block turn ending in a tool call, then a 10 s tool gap, then a turn that
    // extends it. During the gap, one-shot requests of 90 fresh blocks each push s's blocks out of the LRU cache unless
    // they are pinned (100 pinned + 90 in use still fit, so the pin is never dropped for admission).
    private static RunResult RunWith(string retention, int oneShotBlocks = 90)
    {
        var reqs = new List<TraceRequest>
        {
            Req(0, "s", 1, 100, stop: "tool_use"),
            Req(0, "s", 1, 110, think: 10, stop: "end_turn"),
        };
        for (int i = 0; i < 4; i++)
        {
            reqs.Add(Req(2 + i, null, 10_000 + i * 1000, oneShotBlocks));
        }

        var scenario = new Scenario { RetentionHbmPins = "on", Workers = 1, KvBlocks = 200, Retention = [retention] };
        var w = SimWorkload.Build(reqs, scenario);
        return new SimulationRun(w, scenario, "round-robin", "fcfs", retention).Run();
    }

    [Fact]
    public void Run_RetentionOff_ResumedTurnIsReprefilled()
    {
        var off = RunWith("off");
        Assert.Equal(6, off.Completed);
        Assert.Equal(100 * 16, off.ReprefillTokensResumed);
        Assert.Equal(0, off.PinnedBlockSeconds);
    }

    [Fact]
    public void Run_FixedTtlCoveringTheGap_ResumedTurnHitsCache_PinUsed()
    {
        var fixed30 = RunWith("fixed:30");
        Assert.Equal(6, fixed30.Completed);
        Assert.Equal(0, fixed30.ReprefillTokensResumed);
        Assert.True(fixed30.PinnedBlockSeconds > 100 * 9, $"pinned {fixed30.PinnedBlockSeconds}"); // gap 10 s (+ queueing) x 100 blocks
        Assert.Equal(0, fixed30.PinnedUnusedBlockSeconds);
    }

    [Fact]
    public void Run_FixedTtlShorterThanGap_ReprefilledAndPinCountsAsUnused()
    {
        var fixed2 = RunWith("fixed:2");
        Assert.Equal(100 * 16, fixed2.ReprefillTokensResumed);
        Assert.Equal(100 * 2, fixed2.PinnedUnusedBlockSeconds, 1);
        Assert.True(fixed2.PinnedUnusedBlockSeconds <= fixed2.PinnedBlockSeconds * 1.1, $"unused {fixed2.PinnedUnusedBlockSeconds} pinned {fixed2.PinnedBlockSeconds}");
    }

    [Fact]
    public void Run_PinDroppedForAnAdmission_IsToldToThePolicy_WhoseScoreIsNoHit()
    {
        // One-shot requests of 150 blocks: with 100 pinned on the 200-block worker, the engine drops the pin to admit them.
        var fixed30 = RunWith("fixed:30", oneShotBlocks: 150);
        Assert.Equal(6, fixed30.Completed);
        Assert.Equal(100 * 16, fixed30.ResumedAfterTool.ByPinFate[(int)PinFate.Dropped]);
        Assert.Equal(1, fixed30.RetentionStats!.EngineDrops);
        Assert.Equal((0, 1, 1), (fixed30.RetentionStats.Hits, fixed30.RetentionStats.Misses, fixed30.RetentionStats.Uncovered));
    }

    [Fact]
    public void Run_OracleWithinHorizon_PinsExactlyTheKnownGap_ResumedTurnHits()
    {
        // The 10 s gap is known to the oracle: it pins for 10 s + 1 s margin, the return finds the context.
        var oracle = RunWith("oracle:15");
        Assert.Equal(6, oracle.Completed);
        Assert.Equal(0, oracle.ReprefillTokensResumed);
        Assert.Equal(0, oracle.PinnedUnusedBlockSeconds);
    }

    [Fact]
    public void Run_OracleGapBeyondHorizon_PinsNothing()
    {
        var oracle = RunWith("oracle:5");
        Assert.Equal(100 * 16, oracle.ReprefillTokensResumed);
        Assert.Equal(0, oracle.PinnedBlockSeconds);
    }

    [Theory]
    [InlineData("oracle", true)]
    [InlineData("oracle:15", true)]
    [InlineData("oracle:0", false)]
    [InlineData("oracle:x", false)]
    [InlineData("oracles", false)]
    public void IsValid_OracleTakesAnOptionalPositiveHorizon(string name, bool valid) => Assert.Equal(valid, RetentionPlanners.IsValid(name));

    [Fact]
    public void Run_ResumedBreakdown_SaysWhyTheTurnWasReprefilled()
    {
        var off = RunWith("off");
        var fixed2 = RunWith("fixed:2");
        var fixed30 = RunWith("fixed:30");

        Assert.Equal(1, off.ResumedAfterTool.Turns);
        Assert.Equal(100 * 16, off.ResumedAfterTool.ReusableTokens);
        Assert.Equal(100 * 16, off.ResumedAfterTool.ByCause[(int)ReprefillCause.EvictedBeforeArrival]);
        Assert.Equal(100 * 16, off.ResumedAfterTool.ByPinFate[(int)PinFate.None]);
        Assert.Equal(0, off.ResumedAfterHuman.Turns);
        Assert.Equal(1, off.RetentionStats!.Uncovered); // off sends nothing but tracks the gaps (program priority reads them)
        Assert.Equal(0, off.RetentionStats.Retains);

        Assert.Equal(100 * 16, fixed2.ResumedAfterTool.ByPinFate[(int)PinFate.Expired]);
        Assert.Equal(1, fixed2.RetentionStats!.Misses);

        Assert.Equal(0, fixed30.ResumedAfterTool.ReprefillTokens);
        Assert.Equal(0, fixed30.ResumedAfterTool.TurnsWithReprefill);
        Assert.Equal(1, fixed30.RetentionStats!.Hits);
    }

    // One worker of 6,000 blocks (16 tokens). Session s runs 16 tool turns over a ~37 K-token context (2,300 blocks, +5 a
    // turn; under the predictive budget of 0.4 × 6,000); its tool gaps are 5-11 s, every fourth 45 s (a slow test run).
    // One-shot requests of 1,000 fresh blocks arrive every second and push an unpinned idle context out of the LRU
    // within a few seconds. A 2 s pin never covers a gap; a 30 s pin covers the short ones and sits unused through the
    // slow ones; the predictive policy learns the session's own gaps.
    private static RunResult RunToolLoop(string retention)
    {
        var reqs = ToolLoopUnderPressure();

        // This pool turns over in seconds while the context's prefill takes ~1.3 s, so memory priced at the default (a
        // whole pool-second = a GPU-second) would price every pin out; 0.1 lets the policy's TTL choice show.
        var scenario = new Scenario { RetentionHbmPins = "on", Workers = 1, KvBlocks = 6_000, Retention = [retention], RetentionCostWeight = 0.1 };
        return new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "fcfs", retention).Run();
    }

    [Fact]
    public void Run_ToolLoopUnderPressure_PredictiveCutsReprefillVsOffAndFixed2_WithLessIdlePinningThanFixed30()
    {
        var off = RunToolLoop("off");
        var fixed2 = RunToolLoop("fixed:2");
        var fixed30 = RunToolLoop("fixed:30");
        var predictive = RunToolLoop("predictive");
        double Cut(RunResult r) => 1 - (r.ResumedAfterTool.ReprefillTokens / (double)off.ResumedAfterTool.ReprefillTokens);
        double UnusedShare(RunResult r) => r.PinnedUnusedBlockSeconds / r.PinnedBlockSeconds;

        string Show(RunResult r) => $"{r.Retention}: reprefill {r.ResumedAfterTool.ReprefillTokens}/{r.ResumedAfterTool.ReusableTokens} cut {Cut(r):P0} pinned {r.PinnedBlockSeconds:F0} unused {r.PinnedUnusedBlockSeconds:F0} byPin {string.Join(',', r.ResumedAfterTool.ByPinFate)} byCause {string.Join(',', r.ResumedAfterTool.ByCause)}";
        string all = string.Join(" | ", new[] { off, fixed2, fixed30, predictive }.Select(Show));
        Assert.True(off.ResumedAfterTool.ReprefillTokens > 0.8 * off.ResumedAfterTool.ReusableTokens, all);
        Assert.True(Cut(fixed2) < 0.2, all);
        Assert.True(Cut(predictive) >= 0.5, all);
        Assert.True(Cut(predictive) > Cut(fixed2) + 0.3, all);
        Assert.True(Cut(predictive) >= Cut(fixed30) - 0.05, all);

        // The 45 s gaps outlive both TTLs; the predictive pins are shorter where the session's own gaps say so.
        Assert.True(predictive.PinnedBlockSeconds < 0.95 * fixed30.PinnedBlockSeconds, all);
        Assert.True(UnusedShare(predictive) < UnusedShare(fixed30) - 0.05, all);
    }

    // Two workers of 200 blocks, kv-aware routing, fixed:30 pins. Session s's 100-block context is pinned on its worker
    // during a 10 s tool gap; at t = 2 a 150-block one-shot request arrives. Where the pin sits only 100 blocks are
    // free, so placing it there drops the pin and evicts s's context; the other worker is empty.
    private static RunResult RunPlacement(string routing, int seed, string retention = "fixed:30")
    {
        var reqs = new List<TraceRequest>
        {
            Req(0, "s", 1, 100, stop: "tool_use"),
            Req(0, "s", 1, 110, think: 10, stop: "end_turn"),
            Req(2, null, 10_000, 150),
        };
        var scenario = new Scenario { RetentionHbmPins = "on", Workers = 2, KvBlocks = 200, Seed = seed, Retention = [retention] };
        return new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, routing, "fcfs", retention).Run();
    }

    [Fact]
    public void Run_MemoryAwarePlacement_NewContextAvoidsTheWorkerHoldingAPin()
    {
        var blind = Enumerable.Range(1, 8).Select(seed => RunPlacement("kv-aware", seed).ReprefillTokensResumed).ToList();
        var aware = Enumerable.Range(1, 8).Select(seed => RunPlacement("kv-aware:memory_pressure_weight=1", seed).ReprefillTokensResumed).ToList();
        Assert.Contains(blind, t => t > 0); // equal load: some draws put the one-shot on the pinned worker
        Assert.All(aware, t => Assert.Equal(0, t)); // the simulator reports the engines' free blocks to the router
    }

    // RunWith's workload (one 100-block context, a tool gap of GAP seconds, 90-block one-shots flushing the LRU) under
    // predictive, memory priced so the first TTL falls short of the gap.
    private static RunResult RunRenewal(bool renew, double gap, double cost)
    {
        var reqs = new List<TraceRequest>
        {
            Req(0, "s", 1, 100, stop: "tool_use"),
            Req(0, "s", 1, 110, think: gap, stop: "end_turn"),
        };
        for (int i = 0; i < 8; i++)
        {
            reqs.Add(Req(2 + (2 * i), null, 10_000 + (i * 1000), 90));
        }

        var scenario = new Scenario { RetentionHbmPins = "on", Workers = 1, KvBlocks = 200, Retention = ["predictive"], RetentionCostWeight = cost, RetentionRenewals = renew ? 10 : 0 };
        return new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "fcfs", "predictive").Run();
    }

    [Fact]
    public void Run_PredictivePinShorterThanTheGap_RenewedBeforeTheEngineExpiresIt_ReturnFindsOneContinuousPin()
    {
        // The first TTL (~2.5 s at this price) runs out before the 6 s gap closes.
        var lapsed = RunRenewal(renew: false, gap: 6, cost: 0.01);
        var renewed = RunRenewal(renew: true, gap: 6, cost: 0.01);
        string Show(RunResult r) => $"renewals {r.RetentionStats!.Renewals} reprefill {r.ResumedAfterTool.ReprefillTokens} byPin {string.Join(',', r.ResumedAfterTool.ByPinFate)} pinned {r.PinnedBlockSeconds:F0} unused {r.PinnedUnusedBlockSeconds:F0}";
        string all = Show(lapsed) + " | " + Show(renewed);

        Assert.Equal(0, lapsed.RetentionStats!.Renewals);
        Assert.True(lapsed.ResumedAfterTool.ReprefillTokens > 100 * 16 / 2, all);
        Assert.Equal(lapsed.ResumedAfterTool.ReprefillTokens, lapsed.ResumedAfterTool.ByPinFate[(int)PinFate.Expired]);
        Assert.InRange(lapsed.PinnedUnusedBlockSeconds, 100 * 1.0, 100 * 5.0); // the first TTL, unused

        // Renewed by the conditional rule each time it was about to run out: the return finds it held.
        Assert.True(renewed.RetentionStats!.Renewals >= 1, all);
        Assert.Equal(0, renewed.ResumedAfterTool.ByPinFate[(int)PinFate.Expired]);
        Assert.True(renewed.ResumedAfterTool.ReprefillTokens < 0.3 * lapsed.ResumedAfterTool.ReprefillTokens, all);
        Assert.Equal(1, renewed.RetentionStats.Hits);

        // One continuous pin from the first turn's end to the return, all of it used.
        Assert.Equal(0, renewed.PinnedUnusedBlockSeconds);
        Assert.True(renewed.PinnedBlockSeconds > lapsed.PinnedBlockSeconds + (100 * 1.0), all);
    }

    [Theory]
    [InlineData("off", true)]
    [InlineData("shift", false)]
    [InlineData("cover", false)]
    public void Run_EvictionAgePricing_PoolNeverEvicts_NoPinIsSent_AndTheReturnStillHits(string mode, bool pins)
    {
        // One session on a pool that never fills: the engine's eviction age stays +inf, so a priced pin adds nothing.
        var reqs = new List<TraceRequest>
        {
            Req(0, "s", 1, 100, stop: "tool_use"),
            Req(0, "s", 1, 110, think: 10, stop: "end_turn"),
        };
        var scenario = new Scenario { RetentionHbmPins = "on", Workers = 1, KvBlocks = 2000, Retention = ["predictive"], RetentionEvictionAge = mode, RetentionCostWeight = 0.001 };
        Assert.DoesNotContain(scenario.Validate(), e => e.Contains("eviction", StringComparison.Ordinal));
        var r = new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "fcfs", "predictive").Run();

        Assert.True(r.ReprefillTokensResumed < 100 * 16 / 2, $"reprefill {r.ReprefillTokensResumed}"); // most of the context is still there
        Assert.Equal(pins, r.PinnedBlockSeconds > 0);
    }

    [Fact]
    public void Run_EvictionAgePricing_UnderPressure_StillPinsTheContextTheFillersWouldEvict()
    {
        var reqs = new List<TraceRequest>
        {
            Req(2.5, "s", 1, 100, stop: "tool_use"),
            Req(2.5, "s", 1, 110, think: 10, stop: "end_turn"),
        };
        for (int i = 0; i < 16; i++)
        {
            reqs.Add(Req(i, null, 10_000 + (i * 1000), 90)); // evictions before and during the gap: T_c is about a second
        }

        var scenario = new Scenario { RetentionHbmPins = "on", Workers = 1, KvBlocks = 200, Retention = ["predictive"], RetentionEvictionAge = "shift", RetentionCostWeight = 0.001 };
        var r = new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "fcfs", "predictive").Run();
        Assert.True(r.PinnedBlockSeconds > 0);
        Assert.True(r.ReprefillTokensResumed < 100 * 16 / 2, $"reprefill {r.ReprefillTokensResumed}"); // most of the context is still there
    }

    [Fact]
    public void Run_MemoryAwarePlacementWithHotWindow_ProtectsAnUnpinnedContextBetweenTurns()
    {
        // Retention off: s's context is only in the LRU cache during its gap, so the free blocks alone do not show it.
        var weightOnly = Enumerable.Range(1, 8).Select(seed => RunPlacement("kv-aware:memory_pressure_weight=1", seed, "off").ReprefillTokensResumed).ToList();
        var hot = Enumerable.Range(1, 8).Select(seed => RunPlacement("kv-aware:memory_pressure_weight=1+memory_hot_window_s=30", seed, "off").ReprefillTokensResumed).ToList();
        Assert.Contains(weightOnly, t => t > 0);
        Assert.All(hot, t => Assert.Equal(0, t)); // the simulator reports blocks in use, the router knows s is between turns
    }

    [Fact]
    public void Create_AcceptsAnyFixedTtlAndPredictive_RejectsUnknown()
    {
        Assert.True(RetentionPlanners.IsValid("fixed:7.5"));
        Assert.True(RetentionPlanners.IsValid("predictive"));
        Assert.False(RetentionPlanners.IsValid("fixed:x"));
        var s = new Scenario { Trace = "x", Retention = ["off", "fixed:2", "predictive", "bogus"], RetentionEvictionAge = "sometimes" };
        var errors = s.Validate();
        Assert.Contains(errors, e => e.Contains("'bogus'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--retention-eviction-age", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("'fixed:2'", StringComparison.Ordinal) || e.Contains("'predictive'", StringComparison.Ordinal));
    }

    [Fact]
    public void PrefillSeconds_GrowsWithContext()
    {
        var engine = new Worker.Engine.LlmEngine(new Worker.Engine.EngineOptions { Profile = Worker.Engine.ModelProfiles.Get("h100-llama3-8b"), KvBlocks = 100 }, TimeProvider.System);
        double small = AgentRetentionPlanner.PrefillSeconds(engine, 1_000);
        double large = AgentRetentionPlanner.PrefillSeconds(engine, 100_000);
        Assert.True(small > 0);
        Assert.True(large > small * 50, $"{small} vs {large}");
    }
}
