using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// The worker's urgency hint means "under its share while a neighbour is over its share with requests waiting", never
/// "alone", and never among tenants that are all within their shares (no contention); other gateway replicas' work
/// counts as a neighbour's; a replica at its slot limit overdraws it for urgent requests only, a bounded number at a time.
/// </summary>
public class UrgencyAndOverdraftTests
{
    private readonly ReservedCapacity _reserve = new(reserve: 1);
    private long _id;

    private static HierarchicalFairScheduler Create() =>
        (HierarchicalFairScheduler)SchedulingPolicies.Create("hfair", new SchedulingPolicyContext());

    private QueuedRequest Request(string tenant) => new() { Id = ++_id, TenantPath = tenant, PromptTokens = 100, ExpectedOutputTokens = 10 };

    private QueuedRequest Dispatch(HierarchicalFairScheduler s, string tenant)
    {
        s.Enqueue(Request(tenant));
        return s.Dequeue()!;
    }

    [Fact]
    public void FloodMomentarilyAlone_IsNotUrgent_QuietArrivalBesideItIs_FloodStaysNotUrgent()
    {
        var s = Create();
        var alone = Enumerable.Range(0, 8).Select(_ => Dispatch(s, "org/flood/k")).ToList();
        Assert.All(alone, r => Assert.False(_reserve.IsUrgent(s, r)));
        for (var i = 0; i < 4; i++)
        {
            s.Enqueue(Request("org/flood/k")); // the flood's backlog
        }

        s.Enqueue(Request("org/quiet/k"));
        var quiet = s.DequeueWithinShare(_reserve.OverShareFactor)!;
        Assert.Equal("org/quiet/k", quiet.TenantPath);
        Assert.True(quiet.ContendedAtDispatch);
        Assert.True(_reserve.IsUrgent(s, quiet));

        var floodBesideQuiet = s.Dequeue()!;
        Assert.Equal("org/flood/k", floodBesideQuiet.TenantPath);
        Assert.True(floodBesideQuiet.ContendedAtDispatch);
        Assert.False(_reserve.IsUrgent(s, floodBesideQuiet)); // 8 of 9 in flight: over its share
    }

    [Fact]
    public void SessionsOfOneKey_DoNotContend_SiblingKeysDo()
    {
        var s = Create();
        s.Enqueue(new QueuedRequest { Id = ++_id, TenantPath = "org/team/a", SessionId = "s1", PromptTokens = 10, ExpectedOutputTokens = 1 });
        var first = s.Dequeue()!;
        s.Enqueue(new QueuedRequest { Id = ++_id, TenantPath = "org/team/a", SessionId = "s2", PromptTokens = 10, ExpectedOutputTokens = 1 });
        var otherSession = s.Dequeue()!;
        Assert.False(first.ContendedAtDispatch);
        Assert.False(otherSession.ContendedAtDispatch);

        // b beside a, both within their shares (a holds 2 of 2 in flight, nothing waiting): contended, but no hint, so
        // the worker keeps their arrival order as fcfs would.
        var sibling = Dispatch(s, "org/team/b");
        Assert.True(sibling.ContendedAtDispatch);
        Assert.False(_reserve.IsUrgent(s, sibling));

        // a now has requests waiting and wants more than 1.5 x its half (10 of 12): b's next request goes out urgent.
        for (var i = 0; i < 8; i++)
        {
            s.Enqueue(new QueuedRequest { Id = ++_id, TenantPath = "org/team/a", SessionId = "s1", PromptTokens = 10, ExpectedOutputTokens = 1 });
        }

        s.Enqueue(Request("org/team/b"));
        var urgent = s.DequeueUrgent(_reserve.OverShareFactor)!;
        Assert.Equal("org/team/b", urgent.TenantPath);
        Assert.True(_reserve.IsUrgent(s, urgent));
    }

    [Fact]
    public void OtherReplicasWork_MakesALocallyAloneQuietTenantUrgent_ButNotALocallyAloneFlood()
    {
        // Replica 2 sees only a quiet tenant; replica 1 holds 60 requests of a flood.
        var replica2 = Create();
        replica2.SetRemoteInFlight(60);
        var quiet = Dispatch(replica2, "org/quiet/k");
        Assert.True(_reserve.IsUrgent(replica2, quiet));

        // Replica 1 sees only the flood, while replica 2 has 2 quiet requests in flight.
        var replica1 = Create();
        for (int i = 0; i < 60; i++)
        {
            Dispatch(replica1, "org/flood/k");
        }

        replica1.SetRemoteInFlight(2);
        var flood = Dispatch(replica1, "org/flood/k");
        Assert.True(flood.ContendedAtDispatch);
        Assert.Equal(60 / ((60 + 2 + 1) / 2.0), flood.ShareAtDispatch, 6);
        Assert.False(_reserve.IsUrgent(replica1, flood));

        // Nothing elsewhere: the flood alone is neither contended nor urgent.
        replica1.SetRemoteInFlight(0);
        Assert.False(_reserve.IsUrgent(replica1, Dispatch(replica1, "org/flood/k")));
    }

    [Fact]
    public void Overdraw_ReleasesOnlyRequestsOfTenantsUnderTheirShare_AtMostReserveOutstanding_RepaidWhenBackWithinCapacity()
    {
        var s = Create();
        for (int i = 0; i < 10; i++)
        {
            Dispatch(s, "org/flood/k");
        }

        s.Enqueue(Request("org/flood/k"));
        s.Enqueue(Request("org/flood/k"));
        Assert.Null(_reserve.Overdraw(s)); // only an over-share tenant waits

        var q1 = Request("org/quiet/k");
        var q2 = Request("org/other/k");
        s.Enqueue(q1);
        s.Enqueue(q2);
        Assert.Same(q1, _reserve.Overdraw(s));
        Assert.True(_reserve.IsUrgent(s, q1));
        Assert.Null(_reserve.Overdraw(s)); // one outstanding (Reserve = 1)
        Assert.Equal(1, _reserve.Overdraft);

        _reserve.Repay(free: -1); // still one beyond the limit: the overdraft stands
        Assert.Null(_reserve.Overdraw(s));
        _reserve.Repay(free: 0);  // back within the limit
        Assert.Same(q2, _reserve.Overdraw(s));
        _reserve.Complete(q2);    // finishing repays too
        Assert.Equal(0, _reserve.Overdraft);
        Assert.Equal(2, _reserve.Overdrawn);
    }

    [Fact]
    public void Overdraw_TenantWithinOneAndAHalfSharesButNotUnder_IsNotOverdrawn()
    {
        var s = Create();
        for (int i = 0; i < 4; i++)
        {
            Dispatch(s, "org/a/k");
        }

        for (int i = 0; i < 5; i++)
        {
            Dispatch(s, "org/b/k");
        }

        s.Enqueue(Request("org/b/k"));
        Assert.True(s.WithinShare("org/b/k", _reserve.OverShareFactor)); // 5 of 10: within 1.5 x half
        Assert.Null(_reserve.Overdraw(s));                                 // but not under its half
    }

    [Fact]
    public void Overdraw_OnlyOtherReplicasWork_IsNotEnough_TheRemoteWorkMayBeTheTenantsOwn()
    {
        var s = Create();
        s.SetRemoteInFlight(3);
        var r = Request("org/t/k");
        s.Enqueue(r);
        Assert.Null(_reserve.Overdraw(s));

        s.Enqueue(Request("org/other/k")); // a tenant of this replica has work: now they contend here
        var released = _reserve.Overdraw(s);
        Assert.NotNull(released);
        Assert.True(_reserve.IsUrgent(s, released!));
    }

    [Fact]
    public void Overdraw_TenantAloneOrPolicyWithoutSharesOrReserveOff_ReleasesNothing()
    {
        var alone = Create();
        Dispatch(alone, "org/flood/k");
        alone.Enqueue(Request("org/flood/k"));
        Assert.Null(_reserve.Overdraw(alone));

        var fcfs = SchedulingPolicies.Create("fcfs", new SchedulingPolicyContext());
        fcfs.Enqueue(Request("org/quiet/k"));
        Assert.Null(_reserve.Overdraw(fcfs));

        var off = new ReservedCapacity(reserve: 0);
        var s = Create();
        for (var i = 0; i < 5; i++)
        {
            Dispatch(s, "org/flood/k");
        }

        s.Enqueue(Request("org/flood/k"));
        s.Enqueue(Request("org/flood/k"));
        s.Enqueue(Request("org/quiet/k"));
        Assert.Null(off.Overdraw(s));
        Assert.NotNull(_reserve.Overdraw(s));
    }
}
