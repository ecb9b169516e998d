using Gateway.Core.Tenancy;
using Gateway.Core.Tests.Scheduling;

namespace Gateway.Core.Tests.Tenancy;

public class QuotaLedgerTests
{
    private static TenantTree Tree(TenantQuota keyQuota, TenantQuota? orgQuota = null) => TenantTree.Build(new TenantTreeConfig
    {
        Tenants = [new TenantNodeConfig { Name = "org", Quota = orgQuota, Children = [new TenantNodeConfig { Name = "k", Quota = keyQuota }] }],
    });

    [Fact]
    public void TokensPerMinute_ReserveOnAdmit_SettleOnActual()
    {
        var time = new FakeTimeProvider();
        var ledger = new QuotaLedger(time);
        var key = Tree(new TenantQuota { TokensPerMinute = 1000 }).Find("org/k")!;
        Assert.True(ledger.TryReserve(key, 600, 600, out var r1, out _, out _, out _));
        Assert.False(ledger.TryReserve(key, 600, 600, out _, out var limit, out var retry, out var where));
        Assert.Equal(QuotaLimit.TokensPerMinute, limit);
        Assert.Equal("org/k", where);
        Assert.NotNull(retry);
        Assert.True(retry > TimeSpan.Zero && retry <= TimeSpan.FromMinutes(2));
        ledger.Settle(r1!, actualTokens: 100, actualCost: 100); // the request used far less than estimated
        Assert.Equal(100, ledger.TokensInWindow("org/k"));
        Assert.True(ledger.TryReserve(key, 600, 600, out _, out _, out _, out _));
    }

    [Fact]
    public void TokensPerMinute_SlidingWindow_DecaysPreviousMinute()
    {
        var time = new FakeTimeProvider();
        var ledger = new QuotaLedger(time);
        var key = Tree(new TenantQuota { TokensPerMinute = 1000 }).Find("org/k")!;
        time.Advance(TimeSpan.FromSeconds(60 - (time.GetUtcNow().Second))); // start of a window
        Assert.True(ledger.TryReserve(key, 1000, 0, out var r, out _, out _, out _));
        ledger.Settle(r!, 1000, 0);
        Assert.False(ledger.TryReserve(key, 100, 0, out _, out _, out var retry, out _));
        time.Advance(TimeSpan.FromSeconds(60)); // next window, previous counts fully at its start
        Assert.InRange(ledger.TokensInWindow("org/k"), 999, 1000);
        time.Advance(TimeSpan.FromSeconds(30)); // half-way: previous counts half
        Assert.InRange(ledger.TokensInWindow("org/k"), 499, 501);
        Assert.True(ledger.TryReserve(key, 400, 0, out _, out _, out _, out _));
        Assert.NotNull(retry);
    }

    [Fact]
    public void RequestsPerMinute_CountsAdmissions_SlidingWindow()
    {
        var time = new FakeTimeProvider();
        var ledger = new QuotaLedger(time);
        var key = Tree(new TenantQuota { RequestsPerMinute = 2 }).Find("org/k")!;
        time.Advance(TimeSpan.FromSeconds(60 - (time.GetUtcNow().Second))); // start of a window
        Assert.True(ledger.TryReserve(key, 5000, 0, out var a, out _, out _, out _)); // tokens do not matter
        Assert.True(ledger.TryReserve(key, 1, 0, out _, out _, out _, out _));
        ledger.Settle(a!, 0, 0); // settling does not give the request back
        Assert.False(ledger.TryReserve(key, 1, 0, out _, out var limit, out var retry, out var where));
        Assert.Equal(QuotaLimit.RequestsPerMinute, limit);
        Assert.Equal("org/k", where);
        Assert.True(retry >= TimeSpan.FromSeconds(1) && retry <= TimeSpan.FromMinutes(2));
        time.Advance(TimeSpan.FromSeconds(90)); // half-way through the next window: the previous two count as one
        Assert.InRange(ledger.RequestsInWindow("org/k"), 0.99, 1.01);
        Assert.True(ledger.TryReserve(key, 1, 0, out _, out _, out _, out _));
        Assert.False(ledger.TryReserve(key, 1, 0, out _, out _, out _, out _));
    }

    [Fact]
    public void Concurrency_SlotHeldUntilSettled()
    {
        var ledger = new QuotaLedger(new FakeTimeProvider());
        var key = Tree(new TenantQuota { MaxConcurrent = 2 }).Find("org/k")!;
        Assert.True(ledger.TryReserve(key, 1, 1, out var a, out _, out _, out _));
        Assert.True(ledger.TryReserve(key, 1, 1, out _, out _, out _, out _));
        Assert.False(ledger.TryReserve(key, 1, 1, out _, out var limit, out _, out _));
        Assert.Equal(QuotaLimit.Concurrency, limit);
        ledger.Settle(a!, 1, 1);
        ledger.Settle(a!, 1, 1); // idempotent
        Assert.Equal(1, ledger.ConcurrentOf("org/k"));
        Assert.True(ledger.TryReserve(key, 1, 1, out _, out _, out _, out _));
    }

    [Fact]
    public void Budget_OnAncestor_RefusesWholeSubtree_AndSettlesToActual()
    {
        var ledger = new QuotaLedger(new FakeTimeProvider());
        var key = Tree(new TenantQuota(), new TenantQuota { Budget = 1000 }).Find("org/k")!;
        Assert.True(ledger.TryReserve(key, 0, 900, out var r, out _, out _, out _));
        Assert.False(ledger.TryReserve(key, 0, 200, out _, out var limit, out var retry, out var where));
        Assert.Equal(QuotaLimit.Budget, limit);
        Assert.Equal("org", where);
        Assert.Null(retry);
        ledger.Settle(r!, 0, 300);
        Assert.Equal(300, ledger.SpentOf("org"));
        Assert.True(ledger.TryReserve(key, 0, 700, out _, out _, out _, out _));
        Assert.False(ledger.TryReserve(key, 0, 1, out _, out _, out _, out _));
    }
}
