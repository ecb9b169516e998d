using Gateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

public class GatewayMetricsTests
{
    /// <summary>A DI container with its own GatewayMetrics (and so its own registry): parallel tests never share series.</summary>
    private static ServiceProvider CreateServices(Action<GatewayTelemetryOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddGatewayTelemetry(o =>
        {
            o.Tracing.Enabled = false;
            configure?.Invoke(o);
        });
        return services.BuildServiceProvider();
    }

    internal static void RecordEverything(GatewayMetrics m)
    {
        m.RecordRequest("acme/search/key-1", 200, "chat/completions");
        m.RecordRequest("acme/search/key-2", 429, "chat/completions");
        m.RecordTimeToFirstToken("acme/search", TimeSpan.FromMilliseconds(180));
        m.RecordInterTokenLatency("acme/search", TimeSpan.FromMilliseconds(12));
        m.RecordRequestDuration("acme/search", TimeSpan.FromSeconds(2.5), streamed: true);
        m.RecordQueueWait("acme/search", TimeSpan.FromMilliseconds(30));
        m.RecordRoutingDecision("prefix-affinity", TimeSpan.FromMicroseconds(40));
        m.RecordCachedTokens("prefix-affinity", promptTokens: 2000, predictedCachedTokens: 1024, actualCachedTokens: 960);
        m.RecordRetry("connect");
        m.RecordRetentionPinsCreated(3);
        m.RecordRetentionPinsExpired(1);
        m.RecordRetentionPinsDropped("worker-1", 1);
        m.RecordCircuitTransition("worker-1", CircuitState.Open);
        m.RecordRedisCommand("hincrby", TimeSpan.FromMilliseconds(0.4), failed: false);
        m.RecordRedisCommand("get", TimeSpan.FromMilliseconds(5), failed: true);
        m.SetWorkerSource(() =>
        [
            new WorkerTelemetry("worker-0", 4, 0.625, CircuitState.Closed, false),
            new WorkerTelemetry("worker-1", 0, 0.1, CircuitState.Open, true),
        ]);
        m.RecordQueueRejection("acme/search/key-1", "queue_full");
        m.SetActivePinsSource(() => 7);
        m.SetRedisHealth(true);
    }

    [Fact]
    public async Task Scrape_EveryGatewayInstrumentRecorded_EveryDeclaredNameExported()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        RecordEverything(m);

        var e = Exposition.Parse(await m.ScrapeAsync());

        foreach (string name in GatewayMetrics.Names.All)
            Assert.True(e.Types.ContainsKey(name), $"{name} missing from the exposition; families: {string.Join(", ", e.Types.Keys)}");
        Assert.Equal(1, e.Value(GatewayMetrics.Names.Requests, ("tenant", "acme/search"), ("status", "200"), ("endpoint", "chat/completions")));
        Assert.Equal(1, e.Value(GatewayMetrics.Names.Requests, ("status", "429")));
        Assert.Equal(0.625, e.Value(GatewayMetrics.Names.WorkerKvUsage, ("worker", "worker-0")));
        Assert.Equal(4, e.Value(GatewayMetrics.Names.WorkerInFlight, ("worker", "worker-0")));
        Assert.Equal(2, e.Value(GatewayMetrics.Names.WorkerCircuitState, ("worker", "worker-1")));
        Assert.Equal(1, e.Value(GatewayMetrics.Names.WorkerDraining, ("worker", "worker-1")));
        Assert.Equal(7, e.Value(GatewayMetrics.Names.RetentionPinsActive));
        Assert.Equal(1, e.Value(GatewayMetrics.Names.RedisUp));
        Assert.Equal(1024, e.Value(GatewayMetrics.Names.PredictedCachedTokens, ("policy", "prefix-affinity")));
        Assert.Equal(960, e.Value(GatewayMetrics.Names.ActualCachedTokens, ("policy", "prefix-affinity")));
        Assert.Equal(64, e.Value(GatewayMetrics.Names.CachePredictionError, ("policy", "prefix-affinity")));
        Assert.Equal(0.18, e.Value(GatewayMetrics.Names.TimeToFirstToken + "_sum", ("tenant", "acme/search")), 9);
        Assert.Equal(1, e.Named(GatewayMetrics.Names.RoutingDecision + "_bucket")
            .Single(b => b.Labels["policy"] == "prefix-affinity" && b.Labels["le"] != "+Inf" && double.Parse(b.Labels["le"], System.Globalization.CultureInfo.InvariantCulture) == 5e-5).Value);
        Assert.Equal(1, e.Value(GatewayMetrics.Names.RedisErrors, ("operation", "get")));
    }

    [Fact]
    public async Task RecordRequest_TenantPathWithKeyLevel_LabelStopsAtTeam()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        const string secretLooking = "sk-live-THIS-MUST-NOT-LEAK";
        m.RecordRequest("acme/search/" + secretLooking, 200, "chat/completions");
        string text = await m.ScrapeAsync();
        Assert.DoesNotContain(secretLooking, text, StringComparison.Ordinal);
        Assert.Contains("tenant=\"acme/search\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TenantLabel_ManyTenants_BoundedWithOtherAndFoldsCounted()
    {
        using var sp = CreateServices(o => o.Metrics.MaxTenantLabels = 5);
        var m = sp.GetRequiredService<GatewayMetrics>();
        for (int i = 0; i < 100; i++) m.RecordRequest($"org{i}/team", 200, "completions");
        var e = Exposition.Parse(await m.ScrapeAsync());
        var tenants = e.Named(GatewayMetrics.Names.Requests).Select(s => s.Labels["tenant"]).ToHashSet();
        Assert.Equal(6, tenants.Count);
        Assert.Contains("other", tenants);
        Assert.Equal(95, e.Value(GatewayMetrics.Names.Requests, ("tenant", "other")));
        Assert.Equal(95, e.Value(GatewayMetrics.Names.LabelOverflow, ("metric", GatewayMetrics.Names.Requests)));
        Assert.Equal(0, e.Value(GatewayMetrics.Names.LabelOverflow, ("metric", GatewayMetrics.Names.TimeToFirstToken)));
        Assert.Equal("unknown", m.TenantLabel(null));
        Assert.Equal("org0/team", m.TenantLabel("/org0/team/k/"));
    }

    [Fact]
    public async Task CachedTokens_TwoPoliciesInterleaved_EachSeriesGetsOnlyItsOwn()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        for (int i = 0; i < 3; i++)
        {
            m.RecordCachedTokens("kv-aware", promptTokens: 100, predictedCachedTokens: 64, actualCachedTokens: 48);
            m.RecordCachedTokens(new string("round-robin".AsSpan()), promptTokens: 10, predictedCachedTokens: 0, actualCachedTokens: 5);
            m.RecordRoutingDecision("kv-aware", TimeSpan.FromMicroseconds(20));
        }

        var e = Exposition.Parse(await m.ScrapeAsync());
        Assert.Equal(300, e.Value(GatewayMetrics.Names.PromptTokens, ("policy", "kv-aware")));
        Assert.Equal(192, e.Value(GatewayMetrics.Names.PredictedCachedTokens, ("policy", "kv-aware")));
        Assert.Equal(144, e.Value(GatewayMetrics.Names.ActualCachedTokens, ("policy", "kv-aware")));
        Assert.Equal(48, e.Value(GatewayMetrics.Names.CachePredictionError, ("policy", "kv-aware")));
        Assert.Equal(30, e.Value(GatewayMetrics.Names.PromptTokens, ("policy", "round-robin")));
        Assert.Equal(15, e.Value(GatewayMetrics.Names.CachePredictionError, ("policy", "round-robin")));
        Assert.Equal(3, e.Value(GatewayMetrics.Names.RoutingDecision + "_count", ("policy", "kv-aware")));
    }

    [Fact]
    public async Task Observables_NoSourcesSet_NoSeries()
    {
        using var sp = CreateServices();
        var e = Exposition.Parse(await sp.GetRequiredService<GatewayMetrics>().ScrapeAsync());
        Assert.Empty(e.Named(GatewayMetrics.Names.WorkerInFlight));
        Assert.Empty(e.Named(GatewayMetrics.Names.RedisUp));
        Assert.Empty(e.Named(GatewayMetrics.Names.RetentionPinsActive));
    }

    [Fact]
    public async Task WorkerGauges_WorkerLeavesFleet_ItsSeriesLeaveTheScrape()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        IReadOnlyList<WorkerTelemetry> fleet = [new("worker-0", 1, 0.5, CircuitState.Closed, false), new("worker-1", 2, 0.5, CircuitState.Closed, false)];
        m.SetWorkerSource(() => fleet);
        Assert.Equal(2, Exposition.Parse(await m.ScrapeAsync()).Value(GatewayMetrics.Names.WorkerInFlight, ("worker", "worker-1")));
        fleet = [fleet[0]];
        var e = Exposition.Parse(await m.ScrapeAsync());
        Assert.Single(e.Named(GatewayMetrics.Names.WorkerInFlight));
        Assert.Single(e.Named(GatewayMetrics.Names.WorkerDraining));
    }

    [Fact]
    public async Task SetRedisHealthSource_NotConfigured_NoSeriesThenDown()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        bool? health = null;
        m.SetRedisHealthSource(() => health);
        Assert.Empty(Exposition.Parse(await m.ScrapeAsync()).Named(GatewayMetrics.Names.RedisUp));
        health = false;
        Assert.Equal(0, Exposition.Parse(await m.ScrapeAsync()).Value(GatewayMetrics.Names.RedisUp));
    }
}
