using Gateway.Core.Scheduling;
using Gateway.Core.Tenancy;
using Gateway.Scheduling;

namespace Gateway.Tests.Scheduling;

public class FairDispatcherTests
{
    private static long _id;

    private static QueuedRequest Req(string path) => new()
    {
        Id = Interlocked.Increment(ref _id),
        TenantPath = path,
        PromptTokens = 100,
        ExpectedOutputTokens = 10,
        EnqueuedTimestamp = TimeProvider.System.GetTimestamp(),
    };

    private static GatewayQueue Queue(OverloadOptions? overload = null, TenantTree? tree = null) =>
        new(new HierarchicalFairScheduler(), tree ?? TenantTree.Empty, new QuotaLedger(TimeProvider.System), overload);

    [Fact]
    public async Task EnterAsync_NoCapacity_WaitsThenDispatchesInFairOrder()
    {
        await using var d = new FairDispatcher(Queue(), options: new FairDispatcherOptions { MaxInFlight = 1 });
        var first = await d.EnterAsync(Req("heavy"), CancellationToken.None);
        Assert.NotNull(first.Ticket);
        var heavy2 = d.EnterAsync(Req("heavy"), CancellationToken.None);
        var light = d.EnterAsync(Req("light"), CancellationToken.None);
        Assert.False(heavy2.IsCompleted);
        Assert.False(light.IsCompleted);
        first.Ticket!.OnOutputTokens(10);
        first.Ticket.Complete(0, 10);
        var next = await light.WaitAsync(TimeSpan.FromSeconds(5)); // "heavy" was just served: "light" goes first
        Assert.NotNull(next.Ticket);
        Assert.False(heavy2.IsCompleted);
        next.Ticket!.Complete(0, 10);
        Assert.NotNull((await heavy2.WaitAsync(TimeSpan.FromSeconds(5))).Ticket);
    }

    [Fact]
    public async Task EnterAsync_FreeSlotNobodyAhead_ReleasedWithinTheCall()
    {
        await using var d = new FairDispatcher(Queue(), options: new FairDispatcherOptions { MaxInFlight = 2 });
        using var cts = new CancellationTokenSource();
        var first = d.EnterAsync(Req("a"), cts.Token);
        var second = d.EnterAsync(Req("b"), cts.Token);
        var third = d.EnterAsync(Req("a"), cts.Token);

        Assert.True(first.IsCompletedSuccessfully); // no waiting, no continuation: the pump of its own admission released it
        Assert.True(second.IsCompletedSuccessfully);
        Assert.False(third.IsCompleted); // no slot left: it waits
        Assert.Equal(2, d.InFlight);
        (await first).Ticket!.Complete(0, 1);
        Assert.NotNull((await third.WaitAsync(TimeSpan.FromSeconds(5))).Ticket);
        await cts.CancelAsync(); // released requests are no longer tied to the client's token
        Assert.Equal(2, d.InFlight);
        (await second).Ticket!.Complete(0, 1);
        (await third).Ticket!.Complete(0, 1);
        Assert.Equal(0, d.InFlight);
    }

    [Fact]
    public async Task EnterAsync_QueueTimeout_RefusedWith429AndRetryAfter()
    {
        var tree = TenantTree.Build(new TenantTreeConfig
        {
            Tenants = [new TenantNodeConfig { Name = "t", Quota = new TenantQuota { QueueTimeout = TimeSpan.FromMilliseconds(150) } }],
        });
        await using var d = new FairDispatcher(Queue(tree: tree), options: new FairDispatcherOptions { MaxInFlight = 1, TickInterval = TimeSpan.FromMilliseconds(20) });
        var running = await d.EnterAsync(Req("t"), CancellationToken.None);
        var waiting = await d.EnterAsync(Req("t"), CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Null(waiting.Ticket);
        Assert.Equal(AdmissionOutcome.TimedOut, waiting.Refusal.Outcome);
        Assert.Equal(429, waiting.Refusal.ToError().Status);
        Assert.Equal(1, waiting.Refusal.RetryAfterSeconds);
        running.Ticket!.Complete(0, 1);
    }

    [Fact]
    public async Task EnterAsync_ClientCancels_LeavesQueue()
    {
        await using var d = new FairDispatcher(Queue(), options: new FairDispatcherOptions { MaxInFlight = 1 });
        var running = await d.EnterAsync(Req("a"), CancellationToken.None);
        using var cts = new CancellationTokenSource();
        var waiting = d.EnterAsync(Req("b"), cts.Token);
        Assert.Equal(1, d.Queued);
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        Assert.Equal(0, d.Queued);
        running.Ticket!.Complete(0, 1);
        Assert.Equal(0, d.InFlight);
    }

    [Fact]
    public async Task EnterAsync_TenantCapReached_RefusedAndCountedWithoutKeyInLabel()
    {
        using var metrics = new Gateway.Telemetry.GatewayMetrics();
        await using var d = new FairDispatcher(Queue(new OverloadOptions { DefaultTenantMaxQueued = 1 }),
            options: new FairDispatcherOptions { MaxInFlight = 0 }, metrics: metrics);
        var queued = d.EnterAsync(Req("org/team/secret-key-name"), CancellationToken.None);
        var refused = await d.EnterAsync(Req("org/team/secret-key-name"), CancellationToken.None);
        Assert.Equal(AdmissionOutcome.TenantQueueFull, refused.Refusal.Outcome);
        var rejections = Gateway.Tests.Telemetry.Exposition.Parse(await metrics.ScrapeAsync()).Named("gateway_fair_rejections_total").ToList();
        Assert.Equal("org/team", Assert.Single(rejections).Labels["tenant"]);
        Assert.Equal(1, rejections[0].Value);
        Assert.False(queued.IsCompleted);
    }
}
