using Gateway.Core.Scheduling;
using Gateway.Core.Tenancy;

namespace Gateway.Core.Tests.Scheduling;

public class GatewayQueueTests
{
    private static long _id;

    private static QueuedRequest Req(string path, int cls = 0, bool shed = false, int prompt = 100, int output = 10, string? model = null) => new()
    {
        Id = Interlocked.Increment(ref _id),
        TenantPath = path,
        PriorityClass = cls,
        Sheddable = shed,
        PromptTokens = prompt,
        ExpectedOutputTokens = output,
        Model = model,
    };

    private static TenantTree Tree(TenantQuota? keyQuota = null) => TenantTree.Build(new TenantTreeConfig
    {
        Tenants =
        [
            new TenantNodeConfig
            {
                Name = "org",
                AllowedModels = ["m1"],
                Children =
                [
                    new TenantNodeConfig { Name = "k", Quota = keyQuota },
                    new TenantNodeConfig { Name = "other" },
                ],
            },
        ],
    });

    [Fact]
    public void TryEnqueue_TenantQueueCap_RefusesWith429AndRetryAfter()
    {
        var q = new GatewayQueue(new HierarchicalFairScheduler(), Tree(new TenantQuota { MaxQueued = 2 }), new QuotaLedger(new FakeTimeProvider()), time: new FakeTimeProvider());
        Assert.True(q.TryEnqueue(Req("org/k")).Admitted);
        Assert.True(q.TryEnqueue(Req("org/k")).Admitted);
        var refused = q.TryEnqueue(Req("org/k"));
        Assert.Equal(AdmissionOutcome.TenantQueueFull, refused.Outcome);
        Assert.Equal(429, refused.ToError().Status);
        Assert.Equal(1, refused.RetryAfterSeconds);
        Assert.True(q.TryEnqueue(Req("org/other")).Admitted); // a sibling is unaffected
        while (q.QueuedUnder("org/k") == 2)
        {
            Assert.NotNull(q.Dequeue());
        }

        Assert.True(q.TryEnqueue(Req("org/k")).Admitted); // room again once one of its requests left the queue
    }

    [Fact]
    public void ExpireDue_AfterABurst_GivesTheDeadlineHeapsCapacityBack()
    {
        var time = new FakeTimeProvider();
        var tree = TenantTree.Build(new TenantTreeConfig
        {
            Tenants = [new TenantNodeConfig { Name = "t", Quota = new TenantQuota { QueueTimeout = TimeSpan.FromSeconds(2), MaxQueued = 5_000 } }],
        });
        var q = new GatewayQueue(new HierarchicalFairScheduler(), tree, new QuotaLedger(time), time: time);
        for (int i = 0; i < 5_000; i++)
        {
            Assert.True(q.TryEnqueue(Req("t")).Admitted);
        }

        while (q.Dequeue() is not null)
        {
        }

        int peak = q.DeadlineCapacity;
        Assert.True(peak >= 5_000);
        var expired = new List<QueuedRequest>();
        time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(0, q.ExpireDue(expired)); // dispatched requests leave the heap when due, none of them expires
        Assert.True(q.DeadlineCapacity < peak / 4, $"capacity {q.DeadlineCapacity} after a peak of {peak}");
        Assert.True(q.TryEnqueue(Req("t")).Admitted); // still usable
        time.Advance(TimeSpan.FromSeconds(3));
        Assert.Equal(1, q.ExpireDue(expired));
    }

    [Fact]
    public void ExpireDue_AfterQueueTimeout_RemovesAndReleasesQuota()
    {
        var time = new FakeTimeProvider();
        var ledger = new QuotaLedger(time);
        var tree = TenantTree.Build(new TenantTreeConfig
        {
            Tenants = [new TenantNodeConfig { Name = "t", Quota = new TenantQuota { QueueTimeout = TimeSpan.FromSeconds(2), MaxConcurrent = 5 } }],
        });
        var q = new GatewayQueue(new HierarchicalFairScheduler(), tree, ledger, time: time);
        var r1 = Req("t");
        Assert.True(q.TryEnqueue(r1).Admitted);
        time.Advance(TimeSpan.FromSeconds(1));
        var r2 = Req("t");
        Assert.True(q.TryEnqueue(r2).Admitted);
        Assert.Equal(2, ledger.ConcurrentOf("t"));
        var expired = new List<QueuedRequest>();
        time.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Equal(1, q.ExpireDue(expired));
        Assert.Same(r1, Assert.Single(expired));
        Assert.Equal(1, ledger.ConcurrentOf("t"));
        Assert.Equal(1, q.Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, q.ExpireDue(expired));
        Assert.Equal(0, q.Count);
        Assert.Equal(0, ledger.ConcurrentOf("t"));
    }

    [Fact]
    public void Overload_BatchRefusedFirst_ThenSheddableBatchShedForInteractive()
    {
        var q = new GatewayQueue(new HierarchicalFairScheduler(), TenantTree.Empty, new QuotaLedger(new FakeTimeProvider()),
            new OverloadOptions { MaxQueued = 10, BatchAdmitFraction = 0.8 }, new FakeTimeProvider());
        var batch = new List<QueuedRequest>();
        for (var i = 0; i < 8; i++)
        {
            var r = Req("b", cls: 1, shed: true);
            batch.Add(r);
            Assert.True(q.TryEnqueue(r).Admitted);
        }

        Assert.Equal(AdmissionOutcome.QueueFull, q.TryEnqueue(Req("b", cls: 1, shed: true)).Outcome); // 8 >= 0.8 x 10
        Assert.True(q.TryEnqueue(Req("i")).Admitted);
        Assert.True(q.TryEnqueue(Req("i")).Admitted);
        Assert.Equal(10, q.Count);
        var shed = new List<QueuedRequest>();
        Assert.True(q.TryEnqueue(Req("i"), shed).Admitted);
        Assert.Same(batch[^1], Assert.Single(shed)); // newest sheddable batch goes first
        Assert.Equal(10, q.Count);

        // Interactive first on dispatch.
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(0, q.Dequeue()!.PriorityClass);
        }

        Assert.Equal(1, q.Dequeue()!.PriorityClass);
    }

    [Fact]
    public void Overload_FullOfInteractive_RefusesInteractive()
    {
        var q = new GatewayQueue(new HierarchicalFairScheduler(), TenantTree.Empty, new QuotaLedger(new FakeTimeProvider()),
            new OverloadOptions { MaxQueued = 3 }, new FakeTimeProvider());
        for (var i = 0; i < 3; i++)
        {
            Assert.True(q.TryEnqueue(Req("i" + i)).Admitted);
        }

        var r = q.TryEnqueue(Req("i9"));
        Assert.Equal(AdmissionOutcome.QueueFull, r.Outcome);
        Assert.Contains("\"code\":\"rate_limit_exceeded\"", System.Text.Encoding.UTF8.GetString(r.ToError().ToJsonBytes()), StringComparison.Ordinal);
    }

    [Fact]
    public void Quotas_ReserveOnAdmit_SettleOnCompletion()
    {
        var time = new FakeTimeProvider();
        var ledger = new QuotaLedger(time);
        var q = new GatewayQueue(new HierarchicalFairScheduler(), Tree(new TenantQuota { TokensPerMinute = 1000 }), ledger, time: time);
        var r1 = Req("org/k", prompt: 400, output: 200);
        Assert.True(q.TryEnqueue(r1).Admitted);
        Assert.Equal(600, ledger.TokensInWindow("org/k"));
        var refused = q.TryEnqueue(Req("org/k", prompt: 400, output: 200));
        Assert.Equal(AdmissionOutcome.RateLimited, refused.Outcome);
        Assert.NotNull(refused.RetryAfterSeconds);
        Assert.Same(r1, q.Dequeue());
        q.OnOutputTokens(r1, 5);
        q.Complete(r1, cachedPromptTokens: 0, outputTokens: 10); // stopped early: 410 tokens
        Assert.Equal(410, ledger.TokensInWindow("org/k"));
        Assert.True(q.TryEnqueue(Req("org/k", prompt: 400, output: 180)).Admitted);
    }

    [Fact]
    public void ModelAllowList_RefusesWith403()
    {
        var q = new GatewayQueue(new HierarchicalFairScheduler(), Tree(), new QuotaLedger(new FakeTimeProvider()), time: new FakeTimeProvider());
        var r = q.TryEnqueue(Req("org/k", model: "m2"));
        Assert.Equal(AdmissionOutcome.ModelNotAllowed, r.Outcome);
        Assert.Equal(403, r.ToError().Status);
        Assert.True(q.TryEnqueue(Req("org/k", model: "m1")).Admitted);
    }

    [Fact]
    public void Cancel_QueuedRequest_ReleasesEverything()
    {
        var ledger = new QuotaLedger(new FakeTimeProvider());
        var q = new GatewayQueue(new HierarchicalFairScheduler(), Tree(new TenantQuota { MaxConcurrent = 1 }), ledger, time: new FakeTimeProvider());
        var r = Req("org/k");
        Assert.True(q.TryEnqueue(r).Admitted);
        Assert.Equal(AdmissionOutcome.ConcurrencyLimited, q.TryEnqueue(Req("org/k")).Outcome);
        Assert.True(q.Cancel(r));
        Assert.False(q.Cancel(r));
        Assert.Equal(0, q.Count);
        Assert.Equal(0, q.QueuedUnder("org"));
        Assert.True(q.TryEnqueue(Req("org/k")).Admitted);
    }

    [Fact]
    public void Reload_NewWeights_KeepsQueuedWork()
    {
        var ledger = new QuotaLedger(new FakeTimeProvider());
        var q = new GatewayQueue(new HierarchicalFairScheduler(), Tree(), ledger, time: new FakeTimeProvider());
        Assert.True(q.TryEnqueue(Req("org/k")).Admitted);
        q.Reload(TenantTree.Build(new TenantTreeConfig { Tenants = [new TenantNodeConfig { Name = "org", Weight = 5 }] }));
        Assert.Equal(1, q.Count);
        Assert.NotNull(q.Dequeue());
    }
}
