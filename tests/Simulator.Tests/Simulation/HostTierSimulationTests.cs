using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;
using static Simulator.Tests.Simulation.AgentTurns;

namespace Simulator.Tests.Simulation;

/// <summary>The simulator with a host KV tier (--host-kv-blocks): demotion instead of loss, and the predictive policy on it.</summary>
public class HostTierSimulationTests
{
    // A 16-turn tool loop over a ~37 K-token context on one 6,000-block worker while one-shot requests of 1,000 fresh
    // blocks arrive every second and flush an unpinned idle context within seconds (the retention mechanism spec's workload).
    private static RunResult RunToolLoop(string retention, int hostBlocks)
    {
        var reqs = ToolLoopUnderPressure();
        var scenario = new Scenario { Workers = 1, KvBlocks = 6_000, HostKvBlocks = hostBlocks, Retention = [retention] };
        return new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "fcfs", retention).Run();
    }

    [Fact]
    public void HostTier_TurnsTheFlushedContextIntoReloads_InsteadOfRecompute()
    {
        var hbmOnly = RunToolLoop("off", hostBlocks: 0);
        var tiered = RunToolLoop("off", hostBlocks: 60_000);

        Assert.True(hbmOnly.ResumedAfterTool.ReprefillTokens > 0.8 * hbmOnly.ResumedAfterTool.ReusableTokens);
        Assert.True(tiered.ResumedAfterTool.ReprefillTokens < 0.1 * hbmOnly.ResumedAfterTool.ReprefillTokens,
            $"tiered {tiered.ResumedAfterTool.ReprefillTokens} vs HBM only {hbmOnly.ResumedAfterTool.ReprefillTokens}");
        Assert.True(tiered.HostReloadedTokens > 0.8 * hbmOnly.ResumedAfterTool.ReprefillTokens);
        Assert.Equal(60_000, tiered.HostKvBlocks);
        Assert.True(tiered.TtftMs.P50 <= hbmOnly.TtftMs.P50);
    }

    [Fact]
    public void Predictive_OnAHostTier_PinsNothing_AndDoesNoWorseThanOff()
    {
        var off = RunToolLoop("off", hostBlocks: 60_000);
        var predictive = RunToolLoop("predictive", hostBlocks: 60_000);

        Assert.Equal(0, predictive.PinnedBlockSeconds);
        Assert.True(predictive.HostRetains > 0);
        Assert.True(predictive.ResumedAfterTool.ReprefillTokens <= off.ResumedAfterTool.ReprefillTokens * 1.02 + 16 * 16,
            $"predictive {predictive.ResumedAfterTool.ReprefillTokens} vs off {off.ResumedAfterTool.ReprefillTokens}");
    }
}
