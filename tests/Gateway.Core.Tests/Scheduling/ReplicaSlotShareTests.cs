using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// One replica's share of a worker's slots: it asks for what it runs and queues, but at least its standing slots (an
/// idle replica keeps one, so its first request need not wait for a busy replica to give one back); it dispatches up
/// to the smaller of its grant and its fair target, and
/// while the shared state is away it keeps the larger of what it had and an even split over the replicas it last
/// saw, never nothing and never more than the worker's slots.
/// </summary>
public class ReplicaSlotShareTests
{
    [Theory]
    [InlineData(0, 0, 1, 1)]   // idle: keeps its standing slot
    [InlineData(0, 0, 0, 0)]   // no standing slots: an idle replica asks for nothing (fully work-conserving)
    [InlineData(3, 2, 1, 5)]   // busy: what it runs plus what waits
    [InlineData(30, 9, 1, 32)] // never more than the worker's slots
    [InlineData(0, 0, 40, 32)]
    [InlineData(-2, 0, 0, 0)]
    public void Demand_InFlightPlusQueued_AtLeastTheStandingSlots_AtMostTheWorkersSlots(int inFlight, int queued, int standing, int demand)
    {
        Assert.Equal(demand, ReplicaSlotShare.Demand(inFlight, queued, slots: 32, standing));
    }

    [Fact]
    public void Demand_HugeQueue_DoesNotOverflow()
    {
        Assert.Equal(32, ReplicaSlotShare.Demand(int.MaxValue, int.MaxValue, slots: 32, standing: 1));
    }

    [Theory]
    [InlineData(4, 4, 4)] // nobody contends: grant and target are the whole demand
    [InlineData(4, 2, 2)] // over its target: no new request until its grant has fallen
    [InlineData(0, 2, 0)] // below its target but no slot free yet: waits for the slots others release
    [InlineData(-1, 3, 0)]
    public void Limit_IsTheSmallerOfGrantAndTarget(int grant, int target, int limit)
    {
        Assert.Equal(limit, new ReplicaSlotShare(grant, target).Limit);
    }

    [Fact]
    public void Fallback_NeverSynced_EvenSplitOverTheReplicasLastSeen()
    {
        Assert.Equal(16, ReplicaSlotShare.Fallback(null, slots: 32, replicasSeen: 2));
        Assert.Equal(10, ReplicaSlotShare.Fallback(null, slots: 32, replicasSeen: 3));
        Assert.Equal(32, ReplicaSlotShare.Fallback(null, slots: 32, replicasSeen: 0));
    }

    [Fact]
    public void Fallback_KeepsALargerLastShare_SoTheNextSyncReconcilesWithoutABurst()
    {
        Assert.Equal(4, ReplicaSlotShare.Fallback(new ReplicaSlotShare(4, 4), slots: 4, replicasSeen: 2));
        Assert.Equal(2, ReplicaSlotShare.Fallback(new ReplicaSlotShare(0, 0), slots: 4, replicasSeen: 2));
    }

    [Fact]
    public void Fallback_AtLeastOneSlot_AtMostTheWorkersSlots()
    {
        Assert.Equal(1, ReplicaSlotShare.Fallback(new ReplicaSlotShare(0, 0), slots: 4, replicasSeen: 8));
        Assert.Equal(4, ReplicaSlotShare.Fallback(new ReplicaSlotShare(9, 9), slots: 4, replicasSeen: 1));
        Assert.Equal(0, ReplicaSlotShare.Fallback(null, slots: 0, replicasSeen: 1));
    }
}
