using Simulator.Traces;
using Simulator.Workload;

namespace Simulator.Tests.Workload;

public class SimWorkloadTests
{
    private static TraceRequest Req(double t, string? session = null, string? tenant = null, long id = 1) =>
        new() { T = t, Session = session, Tenant = tenant, In = 64, Out = 2, BlockSize = 16, HashIds = HashIds.Of([id, id + 1, id + 2, id + 3]) };

    [Fact]
    public void Build_TenantsFlag_SpreadsSessionsRoundRobinByOrder()
    {
        var reqs = Enumerable.Range(0, 6).Select(i => Req(i, id: i * 10)).ToList();
        var w = SimWorkload.Build(reqs, new Scenario { Tenants = 3 });
        Assert.Equal(new[] { "tenant-0", "tenant-1", "tenant-2" }, w.Tenants);
        Assert.Equal(new[] { "tenant-0", "tenant-1", "tenant-2", "tenant-0", "tenant-1", "tenant-2" }, w.Roots.Select(r => r.Tenant).ToArray());
    }

    [Fact]
    public void Build_TenantRatesAndTimeScale_CompressStartTimes()
    {
        var reqs = new List<TraceRequest> { Req(10, tenant: "org-a/k"), Req(10, tenant: "org-b") };
        var w = SimWorkload.Build(reqs, new Scenario { TenantRates = "org-a=5", TimeScale = 2 });
        Assert.Equal(1.0, w.Roots.Single(r => r.Tenant == "org-a/k").Start, 9);
        Assert.Equal(5.0, w.Roots.Single(r => r.Tenant == "org-b").Start, 9);
    }

    [Fact]
    public void Build_MaxRequests_KeepsEarliestRequests()
    {
        var reqs = Enumerable.Range(0, 10).Select(i => Req(10 - i, id: i * 10)).ToList();
        var w = SimWorkload.Build(reqs, new Scenario { MaxRequests = 3 });
        Assert.Equal(3, w.RequestCount);
        Assert.Equal(new double[] { 1, 2, 3 }, w.Roots.Select(r => r.Start).ToArray());
    }

    [Fact]
    public void Build_SessionRate_PoissonStartsAreSeededAndIncreasing()
    {
        var reqs = Enumerable.Range(0, 50).Select(i => Req(0, session: "s" + i, id: i * 10)).ToList();
        var a = SimWorkload.Build(reqs, new Scenario { SessionRate = 2, Seed = 3 });
        var b = SimWorkload.Build(reqs, new Scenario { SessionRate = 2, Seed = 3 });
        var c = SimWorkload.Build(reqs, new Scenario { SessionRate = 2, Seed = 4 });
        var sa = a.Roots.Select(r => r.Start).ToArray();
        Assert.Equal(sa, b.Roots.Select(r => r.Start).ToArray());
        Assert.NotEqual(sa, c.Roots.Select(r => r.Start).ToArray());
        Assert.True(sa.Zip(sa.Skip(1)).All(p => p.First <= p.Second));
        double mean = sa[^1] / (sa.Length - 1);
        Assert.InRange(mean, 0.25, 1.0); // rate 2/s → mean gap 0.5 s
    }

    [Fact]
    public void Build_Mix_AddsOneShotNonAgentRequestsWithoutChangingTheAgentStream()
    {
        var agents = Enumerable.Range(0, 5).Select(i => Req(0, session: "s" + i, id: i * 10)).ToList();
        var mix = Enumerable.Range(0, 40).Select(i => Req(1000 + i, session: "ignored" + i, id: 5000 + i * 10)).ToList();
        var alone = SimWorkload.Build(agents, new Scenario { SessionRate = 1, Seed = 2, MaxSessions = 3 });
        var mixed = SimWorkload.Build(agents, new Scenario { SessionRate = 1, Seed = 2, MaxSessions = 3, MixRate = 4, MixMaxRequests = 30 }, mix);

        var agentRoots = mixed.Roots.Where(r => r.Tenant != Scenario.MixTenant).ToList();
        Assert.Equal(alone.Roots.Select(r => (r.Id, r.Start)), agentRoots.Select(r => (r.Id, r.Start)));
        var extra = mixed.Roots.Where(r => r.Tenant == Scenario.MixTenant).ToList();
        Assert.Equal(30, extra.Count);                     // --mix-max-requests, not cut by --max-sessions
        Assert.All(extra, r => Assert.True(r.OneShot && r.Turns.Count == 1));
        Assert.InRange(extra[^1].Start / (extra.Count - 1), 0.1, 0.5); // Poisson at 4/s → mean gap 0.25 s
        Assert.Contains(Scenario.MixTenant, mixed.Tenants);

        var recorded = SimWorkload.Build(agents, new Scenario { SessionRate = 1, Seed = 2 }, mix);
        Assert.Equal(1000, recorded.Roots.Where(r => r.Tenant == Scenario.MixTenant).Min(r => r.Start), 9);
    }

    [Fact]
    public void Build_IdealHitRatio_CountsLeadingSeenBlocks()
    {
        // Second request repeats the first's 4 blocks: 64 of 128 prompt tokens hit in an infinite cache.
        var reqs = new List<TraceRequest> { Req(0, id: 1), Req(1, id: 1) };
        var w = SimWorkload.Build(reqs, new Scenario());
        Assert.Equal(0.5, w.IdealPrefixHitRatio, 9);
    }

    [Fact]
    public void Build_SubAgent_LinkedToParentTurn()
    {
        var p0 = Req(0, "p", id: 1);
        var p1 = Req(5, "p", id: 1);
        var c0 = Req(1, "p/a", id: 100);
        c0.Parent = "p";
        c0.ParentTurn = 0;
        var w = SimWorkload.Build([p0, p1, c0], new Scenario());
        var root = Assert.Single(w.Roots);
        var child = Assert.Single(root.Children);
        Assert.Equal(0, child.ParentTurn);
        Assert.Equal(root.Tenant, child.Tenant);
        Assert.Equal(3, w.RequestCount);
    }
}
