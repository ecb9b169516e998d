using Gateway.Core.Routing;
using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// The gateway's capacity rule per worker: all its slots while it keeps up, only the slots it already uses (at least
/// one) while its reports say it is saturated.
/// </summary>
public class SlotCapacityTests
{
    private static readonly SlotCapacity Rule = new() { MaxInFlightPerWorker = 8, MaxReportedWaiting = 2, KvHighWatermark = 0.9 };

    private static WorkerInfo Worker(int inFlight = 0, int waiting = 0, double kv = 0)
    {
        var w = new WorkerInfo("w", 0) { ReportedWaiting = waiting, KvUsage = kv };
        for (int i = 0; i < inFlight; i++)
        {
            w.OnDispatched(1000);
        }

        w.InFlightAtReport = inFlight;
        return w;
    }

    [Fact]
    public void KeepingUp_OffersEverySlot()
    {
        Assert.Equal(8, Rule.SlotsOf(Worker(inFlight: 3, waiting: 2), inTransit: false));
    }

    [Fact]
    public void TooManyWaiting_OrKvFull_KeepsOnlyTheSlotsInUse_AtLeastOne()
    {
        Assert.Equal(3, Rule.SlotsOf(Worker(inFlight: 3, waiting: 3), inTransit: false));
        Assert.Equal(3, Rule.SlotsOf(Worker(inFlight: 3, kv: 0.95), inTransit: false));
        Assert.Equal(1, Rule.SlotsOf(Worker(inFlight: 0, waiting: 10), inTransit: false)); // filled by others: one slot
    }

    [Fact]
    public void WaitingSeenFinishing_SinceTheReport_NoLongerSaturates()
    {
        var w = Worker(inFlight: 4, waiting: 3);
        w.OnCompleted(1000, 1000, reachedDecode: false); // one of ours finished: it left the worker's queue too
        Assert.False(Rule.IsSaturated(w, inTransit: false));
    }

    [Fact]
    public void PendingPrefill_SaturatesAtTheLimit_AndWhileAPromptIsInTransit()
    {
        var rule = Rule with { MaxPendingPrefillTokens = 2000 };
        Assert.False(rule.IsSaturated(Worker(inFlight: 1), inTransit: false));
        Assert.True(rule.IsSaturated(Worker(inFlight: 2), inTransit: false));
        Assert.True(rule.IsSaturated(Worker(inFlight: 1), inTransit: true));
        Assert.False(Rule.IsSaturated(Worker(inFlight: 1), inTransit: true)); // the rule off: transit does not matter
        Assert.True(rule.InTransit(released: 3, onWorkers: 2));
        Assert.False(Rule.InTransit(released: 3, onWorkers: 2));
    }
}
