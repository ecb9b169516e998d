using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;
using static Simulator.Tests.Simulation.AgentTurns;

namespace Simulator.Tests.Simulation;

/// <summary>
/// HBM-only pressure where pins cost other sessions more than they save: the guard must keep <c>predictive</c> from
/// re-prefilling more than <c>off</c>.
/// </summary>
public class PinGuardSimulationTests
{
    // One worker of 1,000 blocks. Agent session a (300 blocks) resumes after 10 s tool calls. Two shared 250-block
    // prompts (system prompts of non-agent traffic, no session: never pinned) are each reused every 3 s with a fresh
    // 10-block tail, and 150 fresh one-shot blocks arrive every second. Without pins the LRU evicts a (the longest idle)
    // and keeps both shared prompts; a pin on a leaves 700 blocks to the LRU, and the shared prompts are pushed out on
    // every cycle: the pin saves 300 blocks every 10 s and costs up to 500 every 3 s.
    private static RunResult Run(string retention, string guard = "on", string hbmPins = "on")
    {
        var reqs = new List<TraceRequest>();
        for (int k = 0; k < 17; k++)
        {
            reqs.Add(Req(0.1, "a", 1, 300 + k, think: k == 0 ? 0 : 10, stop: "tool_use"));
        }

        for (int i = 0; i < 60; i++)
        {
            long shared = i % 2 == 0 ? 100_000 : 200_000;
            var r = Req(0.5 + (1.5 * i), null, shared, 260);
            r.HashIds = HashIds.Of([.. Enumerable.Range(0, 260).Select(j => j < 250 ? shared + j : 5_000_000 + (i * 100L) + j)]);
            reqs.Add(r);
        }

        for (int i = 0; i < 90; i++)
        {
            reqs.Add(Req(1 + i, null, 10_000_000 + (i * 10_000L), 150));
        }

        // Memory priced low enough that the policy pins a's context for its tool gaps.
        var scenario = new Scenario
        {
            Workers = 1, KvBlocks = 1_000, Retention = [retention], RetentionCostWeight = 0.05, RetentionGuard = guard, RetentionHbmPins = hbmPins,
        };
        return new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "fcfs", retention).Run();
    }

    [Fact]
    public void Predictive_WherePinsPushOutOtherContexts_StopsPinning_AndMissesNoMoreThanOff()
    {
        var off = Run("off");
        var predictive = Run("predictive");

        string Show(RunResult r) => $"{r.Retention}: hit {r.PrefixHitRatio:F4} tool reprefill {r.ResumedAfterTool.ReprefillTokens} retains {r.RetentionStats!.Retains} guard skips {r.RetentionStats.GuardSkips}";
        string all = Show(off) + " | " + Show(predictive);
        Assert.True(predictive.RetentionStats!.Retains > 0, all); // it did pin, and found out
        Assert.True(predictive.RetentionStats.GuardSkips > predictive.RetentionStats.Retains, all);
        Assert.Equal("predictive+hbm-pins", predictive.Retention);
        // With the guard's account of the other contexts the first pin's cost is the only loss.
        Assert.True(1 - predictive.PrefixHitRatio <= (1 - off.PrefixHitRatio) * 1.02, all);
    }

    [Fact]
    public void Predictive_WithTheGuardOff_KeepsPinning_AndMissesMoreThanOff()
    {
        var off = Run("off");
        var unguarded = Run("predictive", guard: "off");

        string all = $"off hit {off.PrefixHitRatio:F4} | unguarded hit {unguarded.PrefixHitRatio:F4} retains {unguarded.RetentionStats!.Retains}";
        Assert.Equal("predictive+hbm-pins-unguarded", unguarded.Retention);
        Assert.Equal(0, unguarded.RetentionStats.GuardSkips);
        Assert.True(1 - unguarded.PrefixHitRatio > (1 - off.PrefixHitRatio) * 1.05, all);
    }

    [Fact]
    public void Predictive_ByDefault_OnAnHbmOnlyWorker_RunsExactlyAsOff()
    {
        var off = Run("off");
        var predictive = Run("predictive", hbmPins: "off");

        Assert.Equal("predictive", predictive.Retention);
        Assert.Equal(0, predictive.RetentionStats!.Retains);
        Assert.Equal(off.PrefixHitRatio, predictive.PrefixHitRatio);
        Assert.Equal(off.ResumedAfterTool.ReprefillTokens, predictive.ResumedAfterTool.ReprefillTokens);
        Assert.Equal(off.TtftMs.P99, predictive.TtftMs.P99);
    }
}
