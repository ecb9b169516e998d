using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// Capacity held back for tenants within their share: the last free slots go only to tenants that do not hold
/// <c>OverShareFactor</c> x their weighted share of the in-flight requests; hfair answers the share question per tree level.
/// </summary>
public class ReservedCapacityTests
{
    private long _id;

    private static HierarchicalFairScheduler Create(string weights = "") =>
        (HierarchicalFairScheduler)SchedulingPolicies.Create("hfair", new SchedulingPolicyContext { Weights = SchedulingPolicyContext.ParseWeights(weights) });

    private QueuedRequest Request(string tenant) => new() { Id = ++_id, TenantPath = tenant, PromptTokens = 100, ExpectedOutputTokens = 10 };

    /// <summary>Enqueues and dispatches <paramref name="n"/> requests of <paramref name="tenant"/> (they stay in flight).</summary>
    private List<QueuedRequest> InFlight(IRequestScheduler s, string tenant, int n)
    {
        var list = new List<QueuedRequest>();
        for (var i = 0; i < n; i++)
        {
            var r = Request(tenant);
            s.Enqueue(r);
            list.Add(s.Dequeue()!);
        }

        Assert.All(list, r => Assert.Equal(tenant, r.TenantPath));
        return list;
    }

    [Fact]
    public void WithinShare_TenantHoldingMostInFlight_IsOver_QuietTenantIsWithin()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        s.Enqueue(Request("noisy"));
        s.Enqueue(Request("quiet"));

        // Two active tenants of equal weight: a share is half of (10 + 1) in flight; noisy holds 10.
        Assert.False(s.WithinShare("noisy", 1.5));
        Assert.True(s.WithinShare("quiet", 1.5));
        Assert.True(s.WithinShare("noisy", 2.0)); // 10 < 2 x 0.5 x 11: the factor is the tolerance
    }

    [Fact]
    public void WithinShare_TenantAlone_IsAlwaysWithin_NothingInFlight_EveryoneIs()
    {
        var s = Create();
        Assert.True(s.WithinShare("never-seen"));
        s.Enqueue(Request("a"));
        s.Enqueue(Request("b"));
        Assert.True(s.WithinShare("a") && s.WithinShare("b"));

        var t = Create();
        InFlight(t, "alone", 50);
        t.Enqueue(Request("alone"));
        Assert.True(t.WithinShare("alone"));
    }

    [Fact]
    public void WithinShare_WeightsScaleTheShare()
    {
        var s = Create("a=3,b=1");
        InFlight(s, "a", 6);
        InFlight(s, "b", 2);
        s.Enqueue(Request("a"));
        s.Enqueue(Request("b"));
        // a: 6 < 3/4 x 9, b: 2 < 1/4 x 9. With equal weights a would be over (6 >= 1/2 x 9).
        Assert.True(s.WithinShare("a"));
        Assert.True(s.WithinShare("b"));

        s.UpdateWeights(_ => 1.0);
        Assert.False(s.WithinShare("a"));
        Assert.True(s.WithinShare("b"));
    }

    [Fact]
    public void WithinShare_IsCheckedAtEveryLevel_KeysOfAnOverShareOrgAreOver()
    {
        var s = Create();
        InFlight(s, "orgA/k1", 5);
        InFlight(s, "orgA/k2", 5);
        InFlight(s, "orgB/k1", 1);
        s.Enqueue(Request("orgA/k1"));
        s.Enqueue(Request("orgB/k1"));
        // orgA/k1 holds exactly its half of orgA, but orgA holds 10 of 11 against a half at the top level.
        Assert.False(s.WithinShare("orgA/k1"));
        Assert.True(s.WithinShare("orgB/k1"));
    }

    [Fact]
    public void ActivityFollowsQueueAndFlight_RemovedOrCompletedWorkNoLongerCounts()
    {
        var s = Create();
        var noisy = InFlight(s, "noisy", 4);
        var quiet = Request("quiet");
        s.Enqueue(quiet);
        Assert.False(s.WithinShare("noisy", 1.0)); // 4 >= 0.5 x 5

        Assert.True(s.Remove(quiet)); // quiet is idle again: noisy is alone
        Assert.True(s.WithinShare("noisy", 1.0));

        var q2 = Request("quiet");
        s.Enqueue(q2);
        foreach (var r in noisy.Take(3))
        {
            s.Complete(r, 0, 10);
        }

        Assert.False(s.WithinShare("noisy", 1.0)); // 1 >= 0.5 x 2: exactly its share counting one more is not below it
        Assert.True(s.WithinShare("noisy", 1.5));  // 1 < 1.5 x 0.5 x 2
    }

    [Fact]
    public void Next_UnreservedSlotFollowsFairOrder_ReservedSlotSkipsTheOverShareTenant()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        var n = Request("noisy");
        var q = Request("quiet");
        s.Enqueue(n);
        s.Enqueue(q); // lifted to noisy's vruntime; the tie goes to noisy (older node): strict order serves noisy first
        var reserve = new ReservedCapacity(reserve: 1);

        Assert.Same(q, reserve.Next(s, free: 1));
        Assert.Equal(1, reserve.ReservedPicks);
        Assert.Equal(1, s.ShareOverrides);
        Assert.Same(n, reserve.Next(s, free: 2));
    }

    [Fact]
    public void Next_ReservedSlotWithOnlyOverShareTenantsQueued_IsHeldBack_UntilASlotIsUnreserved()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        InFlight(s, "quiet", 1); // quiet is active (in flight) but has nothing queued
        var n = Request("noisy");
        s.Enqueue(n);
        var reserve = new ReservedCapacity(reserve: 2);

        Assert.Null(reserve.Next(s, free: 2));
        Assert.Null(reserve.Next(s, free: 1));
        Assert.Equal(2, reserve.HeldBack);
        Assert.Equal(1, s.Count); // still queued
        Assert.Same(n, reserve.Next(s, free: 3));
    }

    [Fact]
    public void Next_ReserveZero_OrSchedulerWithoutShares_IsPlainOrder()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        InFlight(s, "quiet", 1);
        var n = Request("noisy");
        s.Enqueue(n);
        Assert.Same(n, new ReservedCapacity(reserve: 0).Next(s, free: 1));

        var fcfs = SchedulingPolicies.Create("fcfs", new SchedulingPolicyContext());
        var f = Request("noisy");
        fcfs.Enqueue(f);
        Assert.Same(f, new ReservedCapacity(reserve: 4).Next(fcfs, free: 1)); // fcfs has no notion of share
    }

    [Fact]
    public void Next_ReservedSlotWithLocality_PrefersTheBestAffinityAmongWithinShareRequests()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        var noisyCached = Request("noisy");
        var quietCold = Request("quiet");
        var quietCached = Request("quiet");
        s.Enqueue(noisyCached);
        s.Enqueue(quietCold);
        s.Enqueue(quietCached);
        double Affinity(QueuedRequest r) => ReferenceEquals(r, noisyCached) ? 1000 : ReferenceEquals(r, quietCached) ? 500 : 0;

        Assert.Same(quietCached, s.DequeueWithinShare(Affinity, 1.5)); // noisy's better match is over its share
        Assert.Same(noisyCached, s.Dequeue(Affinity));                 // an unreserved slot takes it
    }

    [Fact]
    public void Options_RejectNonPositiveFactor_ClampNegativeReserve()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReservedCapacity(1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReservedCapacity(1, double.NaN));
        Assert.Equal(0, new ReservedCapacity(-3).Reserve);
        Assert.False(new ReservedCapacity(0).IsReserved(1));
        Assert.True(new ReservedCapacity(1).IsReserved(1));
    }
}
