using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// Resumed agent turns (QueuedRequest.ResumeCredit, from Gateway.Core.Agents.ResumedTurnPriority) in the schedulers:
/// ahead of fresh work of their own tenant, never ahead of another tenant's fair turn.
/// </summary>
public class ResumedTurnOrderTests
{
    private long _id;

    private QueuedRequest Request(string tenant, string? session = null, double credit = 0, int prompt = 100) => new()
    {
        Id = ++_id,
        TenantPath = tenant,
        SessionId = session,
        PromptTokens = prompt,
        ExpectedOutputTokens = 10,
        ResumeCredit = credit,
    };

    private static IRequestScheduler Create(string policy) => SchedulingPolicies.Create(policy, new SchedulingPolicyContext());

    [Fact]
    public void Hfair_ResumedTurnOfNewSession_OvertakesQueuedFreshSessionsOfSameTenant()
    {
        var s = Create("hfair");
        var fresh1 = Request("a/k", "s1");
        var fresh2 = Request("a/k", "s2");
        var resumed = Request("a/k", "s3", credit: 4096);
        s.Enqueue(fresh1);
        s.Enqueue(fresh2);
        s.Enqueue(resumed);
        Assert.Same(resumed, s.Dequeue());
        Assert.Same(fresh1, s.Dequeue());
        Assert.Same(fresh2, s.Dequeue());
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("vtc")]
    public void ResumedTurnWithoutSession_FirstInItsTenantsQueue_FifoAmongResumed(string policy)
    {
        var s = Create(policy);
        var fresh = Request("a/k");
        var resumed1 = Request("a/k", credit: 1);
        var resumed2 = Request("a/k", credit: 4096);
        s.Enqueue(fresh);
        s.Enqueue(resumed1);
        s.Enqueue(resumed2);
        Assert.Same(resumed1, s.Dequeue());
        Assert.Same(resumed2, s.Dequeue());
        Assert.Same(fresh, s.Dequeue());
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("vtc")]
    public void ResumedTurn_DoesNotOvertakeOtherTenantWhoseTurnItIs(string policy)
    {
        var s = Create(policy);
        // Tenant a is served first (a 1,000-token prompt, less than the credit) while b waits: b's fresh request is next
        // whatever a marks. (A credit given at the tenant's node would put a 3,096 units ahead of b.)
        var served = Request("a/k", "s0", prompt: 1000);
        var otherTenant = Request("b/k", "s1");
        s.Enqueue(served);
        s.Enqueue(otherTenant);
        Assert.Same(served, s.Dequeue());
        var resumed = Request("a/k", "s2", credit: 4096);
        s.Enqueue(resumed);
        Assert.Same(otherTenant, s.Dequeue());
        Assert.Same(resumed, s.Dequeue());
    }

    [Fact]
    public void Fcfs_IgnoresResumeCredit()
    {
        var s = Create("fcfs");
        var fresh = Request("a/k");
        var resumed = Request("a/k", "s", credit: 4096);
        s.Enqueue(fresh);
        s.Enqueue(resumed);
        Assert.Same(fresh, s.Dequeue());
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("vtc")]
    public void TenantMarkingEveryTurnResumed_GetsNoMoreThanItsShare(string policy)
    {
        // Tenant a sends only "resumed" turns, each in a new session (each wakes an idle leaf and takes the credit);
        // tenant b sends fresh ones. Equal weights: each gets half of the service while both are backlogged.
        var loop = new ServiceLoop(Create(policy), slots: 8, seed: 5);
        var a = loop.Add("a/k", keepQueued: 10, session: "*", resumeCredit: 4096);
        var b = loop.Add("b/k", keepQueued: 10, session: "*");
        loop.Run(500);
        loop.ResetService();
        loop.Run(20_000);
        double share = a.Service / (a.Service + b.Service);
        Assert.InRange(share, 0.475, 0.525);
    }

    [Fact]
    public void Hfair_WithinTenant_ResumedSessionsGetAheadButSiblingKeysKeepTheirShare()
    {
        // Key a1's resumed turns only reorder a1's own sessions: sibling key a2 (fresh only) keeps its half of org a.
        var loop = new ServiceLoop(Create("hfair"), slots: 8, seed: 9);
        var a1 = loop.Add("a/k1", keepQueued: 10, session: "*", resumeCredit: 4096);
        var a2 = loop.Add("a/k2", keepQueued: 10, session: "*");
        loop.Run(500);
        loop.ResetService();
        loop.Run(20_000);
        Assert.InRange(a1.Service / (a1.Service + a2.Service), 0.475, 0.525);
    }
}
