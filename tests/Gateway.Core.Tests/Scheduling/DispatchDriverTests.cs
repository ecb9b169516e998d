using Gateway.Core.Routing;
using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// The dispatch loop the gateway and the simulator share: releases while the target reports capacity, asks for capacity
/// again after every release, makes each pick for the worker the capacity names, and with no slot free lets
/// within-share requests take back lent reserved slots (and, with overdraw, under-share requests go beyond capacity
/// when nothing is lent).
/// </summary>
public class DispatchDriverTests
{
    private long _id;

    private static HierarchicalFairScheduler Hfair() =>
        (HierarchicalFairScheduler)SchedulingPolicies.Create("hfair", new SchedulingPolicyContext());

    private QueuedRequest Request(string tenant) => new() { Id = ++_id, TenantPath = tenant, PromptTokens = 100, ExpectedOutputTokens = 10 };

    private void Dispatch(IRequestScheduler s, string tenant, int n)
    {
        for (int i = 0; i < n; i++)
        {
            s.Enqueue(Request(tenant));
            Assert.NotNull(s.Dequeue());
        }
    }

    /// <summary>A target with a fixed number of slots; each release takes one.</summary>
    private sealed class Slots(int slots, WorkerInfo? worker = null) : IDispatchTarget
    {
        public int Left { get; set; } = slots;

        public List<(QueuedRequest Request, bool Reclaimed)> Released { get; } = [];

        public List<bool> Asked { get; } = [];

        public DispatchCapacity Capacity(bool first)
        {
            Asked.Add(first);
            return new(Left, worker);
        }

        public void Release(QueuedRequest request, bool reclaimed)
        {
            Released.Add((request, reclaimed));
            Left--;
        }
    }

    [Fact]
    public void Pump_ReleasesWhileCapacityLasts_AsksAgainAfterEachRelease()
    {
        var s = SchedulingPolicies.Create("fcfs", new SchedulingPolicyContext());
        for (int i = 0; i < 5; i++)
        {
            s.Enqueue(Request("a"));
        }

        var target = new Slots(3);
        int left = new DispatchDriver(DispatchDriver.Over(s), new ReservedCapacity(0)).Pump(target);

        Assert.Equal([1L, 2L, 3L], target.Released.Select(x => x.Request.Id));
        Assert.All(target.Released, x => Assert.False(x.Reclaimed));
        Assert.Equal(0, left);
        Assert.Equal(2, s.Count);
        Assert.Equal([true, false, false, false], target.Asked);
    }

    [Fact]
    public void Pump_EmptyQueue_ReleasesNothing_ReportsTheFreeCapacity()
    {
        var s = SchedulingPolicies.Create("fcfs", new SchedulingPolicyContext());
        var target = new Slots(4);
        Assert.Equal(4, new DispatchDriver(DispatchDriver.Over(s), new ReservedCapacity(0)).Pump(target));
        Assert.Empty(target.Released);
    }

    [Fact]
    public void Pump_NoSlotFree_WithinShareRequestReclaimsALentSlot_OverShareOnesWait()
    {
        var s = Hfair();
        var reserve = new ReservedCapacity(1);
        var driver = new DispatchDriver(DispatchDriver.Over(s), reserve);
        Dispatch(s, "noisy", 10);
        Dispatch(s, "quiet", 1); // quiet is active (in flight) with nothing queued
        for (int i = 0; i < 4; i++)
        {
            s.Enqueue(Request("noisy"));
        }

        // Two slots, only over-share noisy waits: the last (reserved) slot is lent to it, not left idle.
        var fill = new Slots(2);
        driver.Pump(fill);
        Assert.Equal(2, fill.Released.Count);
        Assert.Equal(1, reserve.LentOut);

        // The fleet is full; quiet arrives within its share beside noisy's backlog and takes the lent slot back; noisy's
        // queued work waits.
        s.Enqueue(Request("quiet"));
        var full = new Slots(0);
        driver.Pump(full);
        var (request, reclaimed) = Assert.Single(full.Released);
        Assert.Equal("quiet", request.TenantPath);
        Assert.True(reclaimed);
        Assert.Equal(0, reserve.LentOut);
        Assert.Equal(2, s.Count);
    }

    [Fact]
    public void Pump_NothingLent_NoSlotFree_ReleasesNothing()
    {
        var s = Hfair();
        s.Enqueue(Request("quiet"));
        var target = new Slots(0);
        new DispatchDriver(DispatchDriver.Over(s), new ReservedCapacity(1)).Pump(target);
        Assert.Empty(target.Released);
        Assert.Equal(1, s.Count);
    }

    [Fact]
    public void Pump_WithOverdraw_NothingLent_NoSlotFree_UnderShareRequestGoesBeyondCapacity_FloodWaits()
    {
        var s = Hfair();
        Dispatch(s, "flood", 3); // early in an overload: the flood holds every slot, none lent, and keeps a backlog
        s.Enqueue(Request("flood"));
        s.Enqueue(Request("flood"));
        var quiet = Request("quiet");
        s.Enqueue(quiet);
        var reserve = new ReservedCapacity(1);
        var target = new Slots(0);

        new DispatchDriver(DispatchDriver.Over(s), reserve, overdraw: true).Pump(target);

        Assert.Equal([(quiet, true)], target.Released);
        Assert.True(reserve.IsUrgent(s, quiet));
        Assert.Equal(1, reserve.Overdraft);
        Assert.Equal(2, s.Count); // the flood's requests wait for a free slot
    }

    [Fact]
    public void Pump_GatewayQueue_ReleasesThroughAdmission_QueuedCountsFollow()
    {
        var scheduler = SchedulingPolicies.Create("fcfs", new SchedulingPolicyContext());
        var tree = Gateway.Core.Tenancy.TenantTree.Build(new Gateway.Core.Tenancy.TenantTreeConfig());
        var queue = new GatewayQueue(scheduler, tree, new Gateway.Core.Tenancy.QuotaLedger(TimeProvider.System));
        Assert.True(queue.TryEnqueue(Request("org/a")).Admitted);
        Assert.True(queue.TryEnqueue(Request("org/b")).Admitted);

        var target = new Slots(1);
        new DispatchDriver(queue, new ReservedCapacity(0)).Pump(target);

        Assert.Single(target.Released);
        Assert.Equal(1, queue.Count);
        Assert.Equal(1, queue.QueuedUnder("org"));
    }

    [Fact]
    public void Pump_EachPickIsForTheWorkerTheCapacityNames()
    {
        var worker = new WorkerInfo("w1", 1);
        var queue = new RecordingQueue(3);
        new DispatchDriver(queue, new ReservedCapacity(0)).Pump(new Slots(2, worker));
        Assert.Equal([worker, worker], queue.PickedFor);
        Assert.Equal([2, 1], queue.FreeAtPick);
    }

    private sealed class RecordingQueue(int count) : IDispatchQueue
    {
        public int Count { get; private set; } = count;

        public List<WorkerInfo?> PickedFor { get; } = [];

        public List<int> FreeAtPick { get; } = [];

        public QueuedRequest? DequeueFor(ReservedCapacity reserve, int free, LocalityPick? pick, WorkerInfo? worker)
        {
            PickedFor.Add(worker);
            FreeAtPick.Add(free);
            Count--;
            return new QueuedRequest { Id = Count, TenantPath = "a" };
        }

        public QueuedRequest? ReclaimFor(ReservedCapacity reserve) => null;

        public QueuedRequest? OverdrawFor(ReservedCapacity reserve) => null;
    }
}
