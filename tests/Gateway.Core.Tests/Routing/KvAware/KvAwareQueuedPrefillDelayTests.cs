using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>
/// The delay a placement adds to prompts already waiting on a worker (the engine packs waiting prompts into one prefill
/// step): charged to that worker's placement cost, so a cold prompt avoids joining another prompt's step when an idle
/// worker is as good for itself.
/// </summary>
public class KvAwareQueuedPrefillDelayTests
{
    private readonly FakeTimeProvider _time = new();

    /// <summary>Worker 0 has one short prompt (32 tokens, ~3 ms) waiting for its first token; worker 1 is idle.</summary>
    private static List<WorkerInfo> FleetWithOnePromptWaitingOnWorker0()
    {
        var fleet = KvAwarePolicyTests.Fleet(2);
        fleet[0].OnDispatched(32);
        return fleet;
    }

    [Fact]
    public void Default_ColdPromptNeverJoinsTheWorkerWhereAPromptWaits()
    {
        for (int seed = 1; seed <= 12; seed++)
        {
            var p = new KvAwarePolicy(_time, new Random(seed));
            Assert.Equal(1, p.Options.QueuedPrefillDelayWeight);
            Assert.Equal(1, p.Route(KvAwareTieBreakTests.Req(1_000_000, 64), FleetWithOnePromptWaitingOnWorker0()).WorkerIndex);
        }
    }

    [Fact]
    public void Off_TheWaitingPromptIsWithinTheTieWindow_EitherWorker()
    {
        // Its 3 ms of queue is inside the 5 ms tie window: without the charge both workers are drawn.
        var chosen = new HashSet<int>();
        for (int seed = 1; seed <= 24; seed++)
        {
            var p = new KvAwarePolicy(_time, new Random(seed), KvAwareOptions.Parse("queued_prefill_delay_weight=0"));
            chosen.Add(p.Route(KvAwareTieBreakTests.Req(1_000_000, 64), FleetWithOnePromptWaitingOnWorker0()).WorkerIndex);
        }

        Assert.Equal([0, 1], chosen.Order());
    }

    [Fact]
    public void WaitingRequestsCount_FollowsDispatchFirstTokenAndCompletion()
    {
        var w = new WorkerInfo("w", 0);
        w.OnDispatched(100);
        w.OnDispatched(50);
        Assert.Equal(2, w.PendingPrefillRequests);
        w.OnFirstToken(100, 100);
        Assert.Equal(1, w.PendingPrefillRequests);
        w.OnCompleted(50, 50, reachedDecode: false); // failed before its first token
        w.OnCompleted(100, 100, reachedDecode: true);
        Assert.Equal(0, w.PendingPrefillRequests);
    }

    [Fact]
    public void Parse_NegativeWeight_IsAnError()
    {
        var e = Assert.Throws<ArgumentException>(() => KvAwareOptions.Parse("queued_prefill_delay_weight=-1"));
        Assert.Contains("QueuedPrefillDelayWeight", e.Message, StringComparison.Ordinal);
    }
}
