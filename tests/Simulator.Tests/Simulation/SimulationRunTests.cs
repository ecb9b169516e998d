using Simulator.Reports;
using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;

namespace Simulator.Tests.Simulation;

public class SimulationRunTests
{
    private static TraceRequest Turn(double t, string session, long firstId, int blocks, double think = 0, int outTokens = 4, string? tenant = null) =>
        new()
        {
            T = t,
            Session = session,
            Tenant = tenant,
            In = blocks * 16,
            Out = outTokens,
            BlockSize = 16,
            HashIds = HashIds.Of([.. Enumerable.Range(0, blocks).Select(i => firstId + i)]),
            Think = think,
        };

    [Fact]
    public void Run_ClosedLoop_NextTurnArrivesThinkAfterPreviousCompleted()
    {
        var reqs = new List<TraceRequest>
        {
            Turn(0, "s", 1, 64),
            Turn(100, "s", 1, 80, think: 5), // recorded t=100 is ignored: closed loop
        };
        var scenario = new Scenario { Workers = 1 };
        var w = SimWorkload.Build(reqs, scenario);
        var run = new SimulationRun(w, scenario, "round-robin", "fcfs", "off").Run();
        Assert.Equal(2, run.Completed);
        var first = run.Requests.Single(r => r.Turn == 0);
        var second = run.Requests.Single(r => r.Turn == 1);
        Assert.Equal(first.Finish + 5, second.Arrival, 9);
        Assert.Equal(64 * 16, second.CachedTokens); // the whole previous prompt is still cached on the one worker
        Assert.Equal(0, run.ReprefillTokensResumed);
    }

    [Fact]
    public void Run_SubAgent_ParentWaitsForChild()
    {
        var p0 = Turn(0, "p", 1, 8);
        var p1 = Turn(0, "p", 1, 12, think: 2);
        var c0 = Turn(0, "p/a", 500, 8, think: 1, outTokens: 50);
        c0.Parent = "p";
        c0.ParentTurn = 0;
        var scenario = new Scenario { Workers = 2 };
        var run = new SimulationRun(SimWorkload.Build([p0, p1, c0], scenario), scenario, "round-robin", "fcfs", "off").Run();
        var parent0 = run.Requests.Single(r => r.Session == "p" && r.Turn == 0);
        var child = run.Requests.Single(r => r.Session == "p/a");
        var parent1 = run.Requests.Single(r => r.Session == "p" && r.Turn == 1);
        Assert.Equal(parent0.Finish + 1, child.Arrival, 9);
        Assert.Equal(child.Finish + 2, parent1.Arrival, 9);
    }

    [Fact]
    public void Run_SameInputsAndSeed_ByteIdenticalResult()
    {
        var reqs = new List<TraceRequest>();
        for (int i = 0; i < 120; i++)
        {
            reqs.Add(Turn(i * 0.05, "s" + (i % 30), (i % 7) * 1000, 40 + (i % 5) * 30, think: 0.5, outTokens: 10 + i % 13));
        }

        var scenario = new Scenario { Workers = 3, Tenants = 3, TenantWeights = "tenant-0=2", KvBlocks = 600, Seed = 7 };
        byte[] Once()
        {
            var w = SimWorkload.Build(reqs, scenario);
            var runs = Gateway.Core.Routing.RoutingPolicies.Names
                .SelectMany(r => new[] { "fcfs", "vtc" }.Select(q => new SimulationRun(w, scenario, r, q, "off").Run()))
                .ToList();
            return ResultWriter.ToJson("t", w.RequestCount, w.IdealPrefixHitRatio, runs);
        }

        var a = Once();
        var b = Once();
        Assert.Equal(a, b);
        Assert.Contains("\"jain_index\"", System.Text.Encoding.UTF8.GetString(a), StringComparison.Ordinal);
    }

    [Fact]
    public void Run_CacheAwareRouting_BeatsRoundRobinOnHitRatio()
    {
        // 5 groups of requests sharing long prefixes (not aligned with 4 round-robin workers), interleaved: affinity keeps each group on one worker.
        var reqs = new List<TraceRequest>();
        for (int i = 0; i < 160; i++)
        {
            var r = Turn(i * 0.2, "x" + i, (i % 5) * 10_000, 100);
            r.Session = null;
            reqs.Add(r);
        }

        var scenario = new Scenario { Workers = 4 };
        var w = SimWorkload.Build(reqs, scenario);
        var rr = new SimulationRun(w, scenario, "round-robin", "fcfs", "off").Run();
        foreach (string name in new[] { "sglang-cache-aware", "sglang-cache-aware-v0", "dynamo-kv", "dynamo-kv-approx", "llm-d", "llm-d-precise", "kv-aware" })
        {
            // dynamo-kv, llm-d-precise and kv-aware read the engines' KV events (the scenario relays them by default).
            var run = new SimulationRun(w, scenario, name, "fcfs", "off").Run();
            Assert.True(run.PrefixHitRatio > rr.PrefixHitRatio, $"{name}: {run.PrefixHitRatio} vs round-robin {rr.PrefixHitRatio}");
            Assert.InRange(run.PrefixHitRatio, 0, w.IdealPrefixHitRatio + 1e-9);
        }
    }

    [Fact]
    public void Run_Overload_TwoTenantsContendAndWeightsShowInShares()
    {
        // Two tenants flood one small worker at once: the gateway queue holds both, so time is contended.
        var reqs = new List<TraceRequest>();
        for (int i = 0; i < 80; i++)
        {
            var r = Turn(0, "z" + i, i * 100, 32, outTokens: 40, tenant: i % 2 == 0 ? "a" : "b");
            r.Session = null;
            reqs.Add(r);
        }

        var scenario = new Scenario { Workers = 1, MaxWaitingPerWorker = 1, MaxRunningSequences = 4, TenantWeights = "a=3,b=1" };
        var w = SimWorkload.Build(reqs, scenario);
        var vtc = new SimulationRun(w, scenario, "round-robin", "vtc", "off").Run();
        Assert.True(vtc.ContendedSeconds > 0);
        var a = vtc.Tenants.Single(t => t.Tenant == "a");
        var b = vtc.Tenants.Single(t => t.Tenant == "b");
        Assert.Equal(0.75, a.EntitledShare, 2);
        Assert.True(a.Share > b.Share, $"{a.Share} vs {b.Share}");
        Assert.InRange(vtc.JainIndex, 0.8, 1.0);
    }

    [Fact]
    public void Run_TooLongPrompt_RejectedAndSessionContinues()
    {
        var reqs = new List<TraceRequest> { Turn(0, "s", 1, 200), Turn(0, "s", 1, 4, think: 1) };
        var scenario = new Scenario { Workers = 1, MaxModelLength = 1000 };
        var run = new SimulationRun(SimWorkload.Build(reqs, scenario), scenario, "least-load", "fcfs", "off").Run();
        Assert.Equal(1, run.Rejected);
        Assert.Equal(1, run.Completed);
    }
}
