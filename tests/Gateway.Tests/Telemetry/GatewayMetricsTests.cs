using Gateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

public class GatewayMetricsTests
{
    /// <summary>A DI container with its own IMeterFactory, so parallel tests do not see each other's "Gateway" meter.</summary>
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
    public void Collect_EveryGatewayInstrumentRecorded_EveryDeclaredNameExported()
    {
        using var sp = CreateServices();
        var exporter = sp.GetRequiredService<PrometheusExporter>();
        RecordEverything(sp.GetRequiredService<GatewayMetrics>());

        var e = Exposition.Parse(exporter.Collect());

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
        Assert.Equal(1, e.Value(GatewayMetrics.Names.RoutingDecision + "_bucket", ("policy", "prefix-affinity"), ("le", "5E-05")));
        Assert.Equal(1, e.Value(GatewayMetrics.Names.RedisErrors, ("operation", "get")));
    }

    [Fact]
    public void RecordRequest_TenantPathWithKeyLevel_LabelStopsAtTeam()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        const string secretLooking = "sk-live-THIS-MUST-NOT-LEAK";
        m.RecordRequest("acme/search/" + secretLooking, 200, "chat/completions");
        string text = sp.GetRequiredService<PrometheusExporter>().Collect();
        Assert.DoesNotContain(secretLooking, text, StringComparison.Ordinal);
        Assert.Contains("tenant=\"acme/search\"", text, StringComparison.Ordinal);
    }

    [Fact]
    public void TenantLabel_ManyTenants_BoundedWithOther()
    {
        using var sp = CreateServices(o => o.Metrics.MaxTenantLabels = 5);
        var m = sp.GetRequiredService<GatewayMetrics>();
        for (int i = 0; i < 100; i++) m.RecordRequest($"org{i}/team", 200, "completions");
        var e = Exposition.Parse(sp.GetRequiredService<PrometheusExporter>().Collect());
        var tenants = e.Named(GatewayMetrics.Names.Requests).Select(s => s.Labels["tenant"]).ToHashSet();
        Assert.Equal(6, tenants.Count);
        Assert.Contains("other", tenants);
        Assert.Equal(95, e.Value(GatewayMetrics.Names.Requests, ("tenant", "other")));
        Assert.Equal("unknown", m.TenantLabel(null));
        Assert.Equal("org0/team", m.TenantLabel("/org0/team/k/"));
    }

    [Fact]
    public void Observables_NoSourcesSet_NoSeries()
    {
        using var sp = CreateServices();
        sp.GetRequiredService<GatewayMetrics>();
        string text = sp.GetRequiredService<PrometheusExporter>().Collect();
        Assert.DoesNotContain(GatewayMetrics.Names.WorkerInFlight, text, StringComparison.Ordinal);
        Assert.DoesNotContain(GatewayMetrics.Names.RedisUp, text, StringComparison.Ordinal);
    }

    [Fact]
    public void SetRedisHealthSource_NotConfigured_NoSeriesThenDown()
    {
        using var sp = CreateServices();
        var m = sp.GetRequiredService<GatewayMetrics>();
        var exporter = sp.GetRequiredService<PrometheusExporter>();
        bool? health = null;
        m.SetRedisHealthSource(() => health);
        Assert.DoesNotContain(GatewayMetrics.Names.RedisUp, exporter.Collect(), StringComparison.Ordinal);
        health = false;
        Assert.Equal(0, Exposition.Parse(exporter.Collect()).Value(GatewayMetrics.Names.RedisUp));
    }
}
