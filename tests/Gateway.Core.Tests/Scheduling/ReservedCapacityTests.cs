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
    public void Next_ReservedSlotWithOnlyOverShareTenantsQueued_IsLent_NotLeftIdle()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        InFlight(s, "quiet", 1); // quiet is active (in flight) but has nothing queued
        var n1 = Request("noisy");
        var n2 = Request("noisy");
        s.Enqueue(n1);
        s.Enqueue(n2);
        var reserve = new ReservedCapacity(reserve: 2);

        Assert.Same(n1, reserve.Next(s, free: 2)); // work-conserving: borrowed, not held back
        Assert.Same(n2, reserve.Next(s, free: 1));
        Assert.Equal(2, reserve.Lent);
        Assert.Equal(2, reserve.LentOut);
        Assert.Equal(0, reserve.ReservedPicks);

        reserve.Complete(n1);
        Assert.Equal(1, reserve.LentOut);
    }

    [Fact]
    public void Reclaim_WithinShareArrivalWhileSlotsAreLent_IsDispatchedAtOnce_OncePerLentSlot()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        InFlight(s, "quiet", 1);
        var borrowed = Request("noisy");
        s.Enqueue(borrowed);
        var reserve = new ReservedCapacity(reserve: 1);
        Assert.Same(borrowed, reserve.Next(s, free: 1));

        var q1 = Request("quiet");
        var q2 = Request("quiet-2");
        s.Enqueue(Request("noisy"));
        s.Enqueue(Request("noisy")); // noisy keeps a backlog
        s.Enqueue(q1);
        s.Enqueue(q2);

        // No slot is free: the first quiet request takes the lent slot back; the second waits for a free slot.
        Assert.Same(q1, reserve.Reclaim(s, out var from));
        Assert.Same(borrowed, from);
        Assert.Null(reserve.Reclaim(s, out _));
        Assert.Equal(1, reserve.Reclaimed);
        Assert.Equal(0, reserve.LentOut);
        reserve.Complete(borrowed); // already taken back: nothing changes
        Assert.Equal(0, reserve.LentOut);
    }

    [Fact]
    public void Reclaim_NothingLent_OrOnlyOverShareRequestsQueued_DispatchesNothing()
    {
        var s = Create();
        InFlight(s, "noisy", 10);
        InFlight(s, "quiet", 1);
        var reserve = new ReservedCapacity(reserve: 1);
        var q = Request("quiet");
        s.Enqueue(q);
        Assert.Null(reserve.Reclaim(s, out _)); // nothing lent
        Assert.Same(q, reserve.Next(s, free: 1));

        var n1 = Request("noisy");
        var n2 = Request("noisy");
        s.Enqueue(n1);
        s.Enqueue(n2);
        Assert.Same(n1, reserve.Next(s, free: 1)); // lent
        Assert.Null(reserve.Reclaim(s, out _));   // only the over-share tenant waits
        Assert.Equal(1, s.Count);
    }

    [Fact]
    public void WithinShare_CountsWhatIsInFlight_ABackloggedTenantOfSmallWeightIsWithinWhileItHoldsItsPart()
    {
        var s = Create("a=1,b=3");
        InFlight(s, "a", 1);
        InFlight(s, "b", 3);
        for (var i = 0; i < 6; i++)
        {
            s.Enqueue(Request("a"));
            s.Enqueue(Request("b"));
        }

        // a wants 7 of 16 against a quarter share, but holds 1 of 4 in flight (1 < 1.5 x 1/4 x 5): within.
        Assert.True(s.WithinShare("a", 1.5));
        Assert.True(s.WithinShare("b", 1.5));
    }

    [Fact]
    public void WithinShare_PathNeverSeen_IsJudgedAtItsNearestSeenAncestor()
    {
        var s = Create();
        InFlight(s, "o1/k", 1);
        InFlight(s, "o2/k", 6);

        // o2 holds 6 of 7 (6 >= 1.5 x 1/2 x 8): a key of o2 never seen is over its share through its org.
        Assert.False(s.WithinShare("o2/new", 1.5));
        Assert.True(s.WithinShare("o1/new", 1.5));
        Assert.True(s.WithinShare("o3/new", 1.5));
    }

    [Fact]
    public void NoContention_TenantAloneIsNeverOverItsShare_ItsReservedSlotsAreLent_NoDispatchUrgent()
    {
        var s = Create();
        var reserve = new ReservedCapacity(reserve: 1);
        for (int i = 0; i < 20; i++)
        {
            s.Enqueue(Request("alone"));
        }

        var dispatched = new List<QueuedRequest>();
        while (reserve.Next(s, free: 1) is { } r)
        {
            dispatched.Add(r);
        }

        Assert.Equal(20, dispatched.Count);
        // Alone it needs no reserve: every reserved slot it takes is lent, for a tenant arriving beside it to take back.
        Assert.Equal(20, reserve.Lent);
        Assert.Equal(0, reserve.ReservedPicks);
        // Within its share (alone it holds all of it) but contending with nobody: no urgency hint.
        Assert.All(dispatched, r => Assert.True(r.ShareAtDispatch < reserve.OverShareFactor, $"share {r.ShareAtDispatch}"));
        Assert.All(dispatched, r => Assert.False(reserve.IsUrgent(s, r)));
        Assert.False(reserve.IsUrgent(SchedulingPolicies.Create("fcfs", new SchedulingPolicyContext()), dispatched[0])); // no shares: no hint
    }

    [Fact]
    public void ShareAtDispatch_FloodIsOverItsShare_QuietTenantUnder()
    {
        var s = Create();
        var noisy = InFlight(s, "noisy", 10);
        var q = Request("quiet");
        var n = Request("noisy");
        s.Enqueue(q);
        s.Enqueue(n);
        s.Enqueue(Request("noisy")); // noisy keeps a backlog
        var reserve = new ReservedCapacity();

        Assert.Same(q, s.DequeueWithinShare(1.5));
        Assert.Same(n, s.Dequeue());

        Assert.Equal(0, q.ShareAtDispatch);                  // nothing of quiet's in flight
        Assert.Equal(10 / (0.5 * 12), n.ShareAtDispatch, 6); // 10 in flight against half of 11 + 1
        Assert.Equal(10 / (0.5 * 11), q.NeighbourShareAtDispatch, 6); // beside the backlogged flood holding 10 of 10
        Assert.False(q.BackloggedAtDispatch);
        Assert.True(n.BackloggedAtDispatch);
        Assert.True(reserve.IsUrgent(s, q));
        Assert.False(reserve.IsUrgent(s, n));
        Assert.True(noisy[0].ShareAtDispatch < 1);          // the first one was dispatched alone
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
    public void Bookkeeping_AfterRandomOperations_MatchesSharesComputedFromScratch()
    {
        // Enqueue, dispatch (three kinds of pick), cancel, complete and reweight at random; after every step the
        // scheduler's answer must equal the formula evaluated on counts kept by the test.
        string[] keys = ["o1/k1", "o1/k2", "o2/k1", "o2/k2", "o3/k1"];
        var weights = new Dictionary<string, double> { ["o1"] = 2, ["o2"] = 1, ["o3"] = 1, ["o1/k1"] = 1, ["o1/k2"] = 3 };
        var s = Create("o1=2,o2=1,o3=1,o1/k1=1,o1/k2=3");
        var random = new Random(7);
        var queued = new List<QueuedRequest>();
        var inFlight = new List<QueuedRequest>();
        double W(string path) => weights.TryGetValue(path, out var w) ? w : 1;
        int Count(List<QueuedRequest> list, string prefix) => list.Count(r => r.TenantPath == prefix || r.TenantPath.StartsWith(prefix + "/", StringComparison.Ordinal));
        bool Active(string path) => Count(queued, path) + Count(inFlight, path) > 0;
        bool Expected(string key, double f)
        {
            var org = key[..key.IndexOf('/')];
            foreach (var (node, parent, siblings) in new[] { (org, "", new[] { "o1", "o2", "o3" }), (key, org, keys.Where(k => k.StartsWith(org + "/", StringComparison.Ordinal)).ToArray()) })
            {
                var active = siblings.Where(x => x == node || Active(x)).Sum(W);
                var parentInFlight = parent.Length == 0 ? inFlight.Count : Count(inFlight, parent);
                if (!(Count(inFlight, node) < f * W(node) / active * (parentInFlight + 1)))
                {
                    return false;
                }
            }

            return true;
        }

        for (var step = 0; step < 3000; step++)
        {
            switch (random.Next(6))
            {
                case 0:
                case 1:
                    var r = Request(keys[random.Next(keys.Length)]);
                    s.Enqueue(r);
                    queued.Add(r);
                    break;
                case 2:
                    var d = random.Next(3) switch { 0 => s.Dequeue(), 1 => s.DequeueWithinShare(1.5), _ => s.DequeueWithinShare(x => x.Id % 7, 1.0) };
                    if (d is not null)
                    {
                        Assert.True(queued.Remove(d));
                        inFlight.Add(d);
                    }

                    break;
                case 3 when queued.Count > 0:
                    var c = queued[random.Next(queued.Count)];
                    Assert.True(s.Remove(c));
                    queued.Remove(c);
                    break;
                case 4 when inFlight.Count > 0:
                    var done = inFlight[random.Next(inFlight.Count)];
                    s.Complete(done, 0, 5);
                    inFlight.Remove(done);
                    break;
                case 5 when step % 50 == 0:
                    weights["o2"] = 1 + random.Next(4);
                    s.UpdateWeights(p => W(p));
                    break;
            }

            foreach (var key in keys)
            {
                Assert.Equal(Expected(key, 1.0), s.WithinShare(key, 1.0));
                Assert.Equal(Expected(key, 1.5), s.WithinShare(key, 1.5));
            }
        }
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
