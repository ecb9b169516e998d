using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Tests.Routing;

/// <summary>"Where" is decided once: a request released for a worker goes there while it is eligible, else routing chooses.</summary>
public class DispatchRoutingTests
{
    private readonly FakeTimeProvider _time = new();

    private static RouteRequest Route(ulong first, int blocks) => new()
    {
        TenantPath = "t",
        BlockHashes = [.. Enumerable.Range(0, blocks).Select(i => first + (ulong)i)],
        PromptTokens = blocks * 16,
    };

    /// <summary>
    /// Three workers; 40 blocks of the prefix cached on worker 2 and on worker 0, with worker 0 busier (its prefill
    /// queue), so kv-aware alone chooses worker 2; 20 blocks on worker 1.
    /// </summary>
    private (KvAwarePolicy Policy, WorkerInfo[] Fleet) Fleet()
    {
        var policy = new KvAwarePolicy(_time, new Random(1));
        var fleet = new[] { new WorkerInfo("w0", 0), new WorkerInfo("w1", 1), new WorkerInfo("w2", 2) };
        policy.OnRouted(Route(1000, 40), fleet[2]);
        policy.OnRouted(Route(1000, 40), fleet[0]);
        policy.OnRouted(Route(1000, 20), fleet[1]);
        fleet[0].OnDispatched(50_000);
        return (policy, fleet);
    }

    [Fact]
    public void NoPickedWorker_ThePolicyDecides()
    {
        var (policy, fleet) = Fleet();
        var d = DispatchRouting.Route(policy, Route(1000, 48), fleet, null);
        Assert.Equal(2, d.WorkerIndex);
        Assert.NotEqual(DispatchRouting.PickedWorkerReason, d.Reason);
    }

    [Fact]
    public void PickedWorkerEligible_GoesThere_WithItsPredictionAndTheBestOther()
    {
        var (policy, fleet) = Fleet();
        var request = Route(1000, 48);
        var d = DispatchRouting.Route(policy, request, fleet, fleet[0]);
        Assert.Equal(new RouteDecision(0, 40 * 16, 40 * 16, DispatchRouting.PickedWorkerReason), d);
        Assert.Equal(d, request.Decision); // recorded as a policy records its own decisions (regret at completion)
    }

    [Fact]
    public void AnotherWorkerHoldsMoreOfThePrompt_ThePolicyDecides()
    {
        var (policy, fleet) = Fleet();
        var d = DispatchRouting.Route(policy, Route(1000, 48), fleet, fleet[1]); // 20 blocks there, 40 elsewhere
        Assert.Equal(2, d.WorkerIndex);
        Assert.NotEqual(DispatchRouting.PickedWorkerReason, d.Reason);
    }

    [Fact]
    public void PickedWorkerIneligibleOrNotACandidate_ThePolicyDecides()
    {
        var (policy, fleet) = Fleet();
        fleet[0].Healthy = false;
        Assert.Equal(2, DispatchRouting.Route(policy, Route(1000, 48), fleet, fleet[0]).WorkerIndex);
        fleet[0].Healthy = true;
        fleet[0].Draining = true;
        Assert.Equal(2, DispatchRouting.Route(policy, Route(1000, 48), fleet, fleet[0]).WorkerIndex);

        // A worker that does not serve the model is not in the candidate list: the pick is ignored.
        var d = DispatchRouting.Route(policy, Route(1000, 48), [fleet[1], fleet[2]], new WorkerInfo("elsewhere", 5));
        Assert.Equal(1, d.WorkerIndex); // position of w2 in this list
    }

    [Fact]
    public void PolicyWithoutPrefixIndex_PickedWorkerKept_NoPrediction()
    {
        var fleet = new[] { new WorkerInfo("w0", 0), new WorkerInfo("w1", 1) };
        var d = DispatchRouting.Route(new RoundRobinPolicy(), Route(1000, 8), fleet, fleet[1]);
        Assert.Equal(new RouteDecision(1, 0, 0, DispatchRouting.PickedWorkerReason), d);
    }
}
