using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;
using static Simulator.Tests.Simulation.AgentTurns;

namespace Simulator.Tests.Simulation;

/// <summary>
/// --program-priority: a turn that closes a tool gap (Gateway.Core.Agents.ResumedTurnPriority) overtakes fresh work
/// that is already waiting, in the gateway queue (hfair, within the tenant) and in the engine's waiting queue.
/// </summary>
public class ProgramPriorityTests
{
    // One worker with room for everything (no eviction). Session s: a 100-block turn ending in a tool call, a 5 s tool
    // gap, then its next turn. Ten fresh sessions of the same tenant open with a 1,000-block turn each (two 8,192-token
    // prefill steps) at 4.0-4.9 s, faster than the worker serves them, so several still wait when s comes back at ~5 s.
    private static (RunResult Result, RequestRecord Resumed, int FreshServedFirst) RunWith(string scheduling, int maxWaiting, bool priority, string retention = "off", string mode = "on")
    {
        var reqs = new List<TraceRequest>
        {
            Req(0, "s", 1, 100, stop: "tool_use"),
            Req(0, "s", 1, 110, think: 5, stop: "end_turn"),
        };
        for (int i = 0; i < 10; i++)
        {
            reqs.Add(Req(4 + (i * 0.1), "fresh-" + i, 10_000 + (i * 10_000L), 1_000, stop: "end_turn"));
        }

        var scenario = new Scenario { Workers = 1, KvBlocks = 40_000, MaxWaitingPerWorker = maxWaiting, ProgramPriority = priority ? mode : "off" };
        var result = new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", scheduling, retention).Run();
        var resumed = result.Requests.Single(r => r.Session == "s" && r.Turn == 1);
        int before = result.Requests.Count(r => r.Session.StartsWith("fresh-", StringComparison.Ordinal) && r.Arrival < resumed.Arrival && r.FirstToken < resumed.FirstToken);
        return (result, resumed, before);
    }

    [Fact]
    public void GatewayQueue_Hfair_ResumedTurnOvertakesWaitingFreshWorkOfItsTenant()
    {
        var (off, offResumed, offBefore) = RunWith("hfair", maxWaiting: 1, priority: false);
        var (on, onResumed, onBefore) = RunWith("hfair", maxWaiting: 1, priority: true);
        string all = $"off: {offBefore} fresh first, resumed TTFT {offResumed.FirstToken - offResumed.Arrival:F2} s; on: {onBefore} fresh first, resumed TTFT {onResumed.FirstToken - onResumed.Arrival:F2} s";
        Assert.Equal(12, off.Completed);
        Assert.Equal(12, on.Completed);
        Assert.Equal("off", off.ProgramPriority);
        Assert.Equal(0, off.ResumedTurnsBoosted);
        Assert.Equal(1, on.ResumedTurnsBoosted);
        Assert.True(offBefore >= 5, all);   // without priority it queues behind the waiting fresh requests
        Assert.True(onBefore <= 2, all);    // with it, only the prefills already running (admitted) go first
    }

    [Fact]
    public void EngineQueue_Fcfs_ResumedTurnOvertakesFreshWorkWaitingInTheEngine()
    {
        // fcfs ignores the gateway credit; everything is sent to the engine at once (64 may wait there), so the order is
        // the engine's: priority, then arrival.
        var (_, offResumed, offBefore) = RunWith("fcfs", maxWaiting: 64, priority: false);
        var (_, onResumed, onBefore) = RunWith("fcfs", maxWaiting: 64, priority: true);
        string all = $"off: {offBefore} fresh first, resumed TTFT {offResumed.FirstToken - offResumed.Arrival:F2} s; on: {onBefore} fresh first, resumed TTFT {onResumed.FirstToken - onResumed.Arrival:F2} s";
        Assert.True(offBefore >= 5, all);
        Assert.True(onBefore <= 2, all);
    }

    [Fact]
    public void HumanGap_NotBoosted()
    {
        var reqs = new List<TraceRequest>
        {
            Req(0, "s", 1, 100, stop: "end_turn"),
            Req(0, "s", 1, 110, think: 5, stop: "end_turn"),
        };
        var scenario = new Scenario { Workers = 1, KvBlocks = 40_000, ProgramPriority = "on" };
        var result = new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "round-robin", "hfair", "off").Run();
        Assert.Equal("on", result.ProgramPriority);
        Assert.Equal(0, result.ResumedTurnsBoosted);
    }

    [Fact]
    public void PinnedMode_BoostsOnlyWhileTheRetentionPinCoversTheGap()
    {
        // "pinned": no pin under retention off (fresh order), a 30 s pin over the 5 s gap under fixed:30 (boosted).
        var (off, _, offBefore) = RunWith("fcfs", maxWaiting: 64, priority: true, retention: "off", mode: "pinned");
        var (pinned, _, pinnedBefore) = RunWith("fcfs", maxWaiting: 64, priority: true, retention: "fixed:30", mode: "pinned");
        Assert.Equal(0, off.ResumedTurnsBoosted);
        Assert.Equal(1, pinned.ResumedTurnsBoosted);
        Assert.True(offBefore >= 5, $"{offBefore}");
        Assert.True(pinnedBefore <= 2, $"{pinnedBefore}");
    }
}
