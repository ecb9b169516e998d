using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Gateway.Core.Scheduling;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>The dispatch step shared by the gateway and the simulator: the freed worker takes what it has cached, within the bound.</summary>
public class LocalityPickTests
{
    private readonly FakeTimeProvider _time = new();

    private static RouteRequest Route(ulong first, int blocks) => new()
    {
        TenantPath = "t",
        BlockHashes = [.. Enumerable.Range(0, blocks).Select(i => first + (ulong)i)],
        PromptTokens = blocks * 16,
    };

    private static QueuedRequest Queued(long id, string tenant, RouteRequest route) => new()
    {
        Id = id,
        TenantPath = tenant,
        PromptTokens = route.PromptTokens,
        Route = route,
    };

    private (KvAwarePolicy Policy, WorkerInfo[] Fleet) FleetWithPrefixOnWorker1(RouteRequest warm)
    {
        var policy = new KvAwarePolicy(_time, new Random(1));
        var fleet = new[] { new WorkerInfo("w0", 0), new WorkerInfo("w1", 1) };
        policy.OnRouted(warm, fleet[1]); // insert-on-route: worker 1 now holds the prefix
        return (policy, fleet);
    }

    [Fact]
    public void KvAware_PredictsCachedTokensPerWorker()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        Assert.Equal(20 * 16, policy.PredictCachedTokens(Route(1000, 30), fleet[1]));
        Assert.Equal(0, policy.PredictCachedTokens(Route(1000, 30), fleet[0]));
        Assert.Equal(0, policy.PredictCachedTokens(Route(5000, 30), fleet[1]));
    }

    [Fact]
    public void Next_FreedWorkerTakesTheRequestWhosePrefixItHolds_OtherWorkerKeepsFairOrder()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        var s = new HierarchicalFairScheduler();
        var cold = Queued(1, "a", Route(5000, 20));
        var warm = Queued(2, "b", Route(1000, 24));
        s.Enqueue(cold);
        s.Enqueue(warm);
        var pick = new LocalityPick(policy);
        Assert.True(pick.Enabled);
        Assert.Same(warm, pick.Next(s, fleet[1]));
        Assert.Same(cold, pick.Next(s, fleet[0]));
        Assert.Equal(1, s.LocalityReorders);
    }

    [Fact]
    public void Next_OutsideTheBound_FairOrderWins()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        var s = new HierarchicalFairScheduler(locality: LocalityOptions.Default with { LagBound = 100 });
        s.Charge("b", 1000); // b is 1000 cost units ahead of a: beyond the bound of 100
        var cold = Queued(1, "a", Route(5000, 20));
        var warm = Queued(2, "b", Route(1000, 24));
        s.Enqueue(cold);
        s.Enqueue(warm);
        Assert.Same(cold, new LocalityPick(policy).Next(s, fleet[1]));
        Assert.InRange(s.MaxDispatchLag, 0, 100);
    }

    [Fact]
    public void Disabled_OrPolicyWithoutPrefixIndex_PlainFairOrder()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        foreach (var pick in new[] { new LocalityPick(policy, enabled: false), new LocalityPick(new RoundRobinPolicy()) })
        {
            var s = new HierarchicalFairScheduler();
            var cold = Queued(1, "a", Route(5000, 20));
            s.Enqueue(cold);
            s.Enqueue(Queued(2, "b", Route(1000, 24)));
            Assert.False(pick.Enabled);
            Assert.Same(cold, pick.Next(s, fleet[1]));
            Assert.Equal(0, s.LocalityPicks);
        }
    }

    [Fact]
    public void ShortMatch_BelowMinCachedTokens_DoesNotReorder()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 10)); // 160 cached tokens < 256
        var s = new HierarchicalFairScheduler();
        var cold = Queued(1, "a", Route(5000, 20));
        s.Enqueue(cold);
        s.Enqueue(Queued(2, "b", Route(1000, 24)));
        Assert.Same(cold, new LocalityPick(policy).Next(s, fleet[1]));
        Assert.Equal(0, s.LocalityReorders);
    }

    [Fact]
    public void Next_ChoiceByAffinity_MarksTheRequestPickedForTheFreedWorker_FairOrderChoiceIsNot()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        var s = new HierarchicalFairScheduler();
        var cold = Queued(1, "a", Route(5000, 20));
        var warm = Queued(2, "b", Route(1000, 24));
        s.Enqueue(cold);
        s.Enqueue(warm);
        var pick = new LocalityPick(policy, sendToPickedWorker: true);
        Assert.Same(warm, pick.Next(s, fleet[1]));
        Assert.Same(fleet[1], warm.PickedFor);
        Assert.Same(cold, pick.Next(s, fleet[0])); // nothing cached on worker 0: the fair order chose it, routing places it
        Assert.Null(cold.PickedFor);
    }

    [Fact]
    public void Next_SendToPickedWorkerOff_TheDefault_NeverMarksAPickedWorker()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        var s = new HierarchicalFairScheduler();
        var warm = Queued(1, "b", Route(1000, 24));
        s.Enqueue(Queued(0, "a", Route(5000, 20)));
        s.Enqueue(warm);
        var pick = new LocalityPick(policy);
        Assert.False(pick.SendToPickedWorker);
        Assert.Same(warm, pick.Next(s, fleet[1])); // still chosen for its cache there, but routing will place it
        Assert.Null(warm.PickedFor);
    }

    [Fact]
    public void Next_SchedulerWithoutLocality_NeverMarksAPickedWorker()
    {
        var (policy, fleet) = FleetWithPrefixOnWorker1(Route(1000, 20));
        var s = new FcfsScheduler();
        var warm = Queued(1, "b", Route(1000, 24)); // cached on worker 1, but fcfs takes the head without asking
        s.Enqueue(warm);
        Assert.Same(warm, new LocalityPick(policy, sendToPickedWorker: true).Next(s, fleet[1]));
        Assert.Null(warm.PickedFor);
    }

    [Fact]
    public void FairHead_IsPassedOverAtMostMaxHeadSkipsTimes()
    {
        var s = new HierarchicalFairScheduler(locality: LocalityOptions.Default with { LagBound = 1e9, MaxHeadSkips = 3 });
        s.Enqueue(new QueuedRequest { Id = 0, TenantPath = "a", PromptTokens = 10 });
        for (int i = 1; i <= 10; i++)
        {
            s.Enqueue(new QueuedRequest { Id = i, TenantPath = "b", PromptTokens = 10 });
        }

        var served = new List<long>();
        for (int i = 0; i < 11; i++)
        {
            served.Add(s.Dequeue(r => r.TenantPath == "b" ? 1 : 0)!.Id);
        }

        Assert.Equal(3, served.IndexOf(0)); // a's request is the fair pick throughout: passed over 3 times, then served
    }
}
