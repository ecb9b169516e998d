using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Diagnostics;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using System.Text;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Gateway.Tests.Telemetry;

/// <summary>Spans exported by OpenTelemetry's in-memory exporter; adds and reads under one lock (spans of tests
/// running beside each other arrive from several threads).</summary>
internal sealed class ExportedSpans : Collection<Activity>
{
    public IReadOnlyList<Activity> Snapshot()
    {
        lock (this) return [.. this];
    }

    protected override void InsertItem(int index, Activity item)
    {
        lock (this) base.InsertItem(index, item);
    }

    public async Task<Activity> WaitForAsync(Func<Activity, bool> match, TimeSpan timeout)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            foreach (var a in Snapshot()) if (match(a)) return a;
            await Task.Delay(20);
        }
        throw new TimeoutException("span not exported; have: " + string.Join(", ", Snapshot().Select(s => s.Source.Name + ":" + s.DisplayName)));
    }
}

public class TracingTests
{
    [Fact]
    public async Task RequestSpan_GatewayForwardsDownstream_CarriesTagsAndPropagatesTraceparent()
    {
        var exporter = new ExportedSpans();
        var seenTraceparent = new ConcurrentQueue<string>();
        await using var downstream = await KestrelApp.StartAsync(null, app =>
            app.MapGet("/worker", (HttpContext ctx) =>
            {
                seenTraceparent.Enqueue(ctx.Request.Headers["traceparent"].ToString());
                return Results.Text("ok");
            }));
        await using var gateway = await KestrelApp.StartAsync(
            b =>
            {
                b.Services.AddGatewayTelemetry(o => o.Tracing.Configure = t => t.AddInMemoryExporter(exporter));
                b.Services.AddHttpClient();
            },
            app => app.MapGet("/v1/test", async (HttpContext ctx, IHttpClientFactory clients) =>
            {
                var span = Activity.Current;
                GatewayTracing.TagRequest(span, "acme/search", "llama3-8b", "agent_tool_return");
                using (var route = GatewayTracing.StartSpan("gateway.route"))
                    GatewayTracing.TagRouting(span, "worker-3", "prefix-affinity", 1024);
                GatewayTracing.TagQueueWait(span, TimeSpan.FromMilliseconds(12.5));
                GatewayTracing.TagRetries(span, 1);
                GatewayTracing.TagActualCachedTokens(span, 960);
                using var http = clients.CreateClient();
                string body = await http.GetStringAsync(new Uri(downstream.Address, "worker"), ctx.RequestAborted);
                return Results.Text(body);
            }));

        using var client = new HttpClient();
        Assert.Equal("ok", await client.GetStringAsync(new Uri(gateway.Address, "v1/test")));

        // The downstream app saw a W3C traceparent: version-traceid-parentid-flags.
        string traceparent = Assert.Single(seenTraceparent);
        var parts = traceparent.Split('-');
        Assert.Equal(4, parts.Length);
        Assert.Equal("00", parts[0]);
        // The gateway's server span of that trace (the downstream's own server span shares the trace but has no routing tags).
        var server = await exporter.WaitForAsync(a => a.Source.Name == "Microsoft.AspNetCore" && a.Kind == ActivityKind.Server
            && a.TraceId.ToHexString() == parts[1] && a.GetTagItem(GatewayTracing.Tags.Worker) is not null, TimeSpan.FromSeconds(10));

        Assert.Equal("acme/search", server.GetTagItem(GatewayTracing.Tags.Tenant));
        Assert.Equal("llama3-8b", server.GetTagItem(GatewayTracing.Tags.Model));
        Assert.Equal("agent_tool_return", server.GetTagItem(GatewayTracing.Tags.SessionKind));
        Assert.Equal("worker-3", server.GetTagItem(GatewayTracing.Tags.Worker));
        Assert.Equal("prefix-affinity", server.GetTagItem(GatewayTracing.Tags.RoutingPolicy));
        Assert.Equal(1024L, server.GetTagItem(GatewayTracing.Tags.PredictedCachedTokens));
        Assert.Equal(12.5, server.GetTagItem(GatewayTracing.Tags.QueueWaitMs));
        Assert.Equal(1, server.GetTagItem(GatewayTracing.Tags.Retries));
        Assert.Equal(960L, server.GetTagItem(GatewayTracing.Tags.ActualCachedTokens));

        // Parented by the gateway's outgoing HTTP client span, itself a child of the server span.
        var outgoing = await exporter.WaitForAsync(a => a.Source.Name == "System.Net.Http" && a.SpanId.ToHexString() == parts[2], TimeSpan.FromSeconds(10));
        Assert.Equal(server.SpanId, outgoing.ParentSpanId);
        Assert.Equal(ActivityKind.Client, outgoing.Kind);
        var route = await exporter.WaitForAsync(a => a.Source.Name == GatewayTracing.SourceName && a.TraceId == server.TraceId, TimeSpan.FromSeconds(10));
        Assert.Equal("gateway.route", route.DisplayName);
        Assert.Equal(server.SpanId, route.ParentSpanId);
    }

    /// <summary>The providers <c>AddGatewayTelemetry</c> registers, built and started as a host would.</summary>
    private static ServiceProvider Providers(Action<TracingOptions> configure)
    {
        var services = new ServiceCollection();
        services.AddGatewayTelemetry(o => configure(o.Tracing));
        var sp = services.BuildServiceProvider();
        _ = sp.GetService<TracerProvider>();
        _ = sp.GetService<MeterProvider>();
        return sp;
    }

    [Fact]
    public async Task OtlpExporter_HttpProtobufEndpoint_ReceivesSpansAndRuntimeMetrics()
    {
        var received = new ConcurrentQueue<(string Path, string ContentType, byte[] Body)>();
        await using var collector = await KestrelApp.StartAsync(null, app =>
        {
            foreach (var signal in new[] { "/v1/traces", "/v1/metrics" })
            {
                app.MapPost(signal, async (HttpContext ctx) =>
                {
                    using var ms = new MemoryStream();
                    await ctx.Request.Body.CopyToAsync(ms);
                    received.Enqueue((ctx.Request.Path, ctx.Request.ContentType ?? "", ms.ToArray()));
                    return Results.Ok();
                });
            }
        });
        string sourceName = "OtlpTest." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(sourceName);
        using (var providers = Providers(o =>
        {
            o.OtlpEndpoint = collector.Address.ToString();
            o.OtlpProtocol = "http/protobuf";
            o.Sources = [sourceName];
            o.ServiceName = "llm-gateway-test";
        }))
        {
            Assert.NotNull(providers.GetService<TracerProvider>());
            Assert.NotNull(providers.GetService<MeterProvider>());
            using (var a = source.StartActivity("gateway.test"))
            {
                Assert.NotNull(a);
                a!.SetTag(GatewayTracing.Tags.Tenant, "acme/search");
            }
        } // disposing the providers flushes the batch processor and the periodic metric reader

        var traces = Assert.Single(received, r => r.Path == "/v1/traces");
        Assert.Equal("application/x-protobuf", traces.ContentType);
        Assert.Contains("gateway.test", Encoding.UTF8.GetString(traces.Body));
        Assert.Contains("llm-gateway-test", Encoding.UTF8.GetString(traces.Body));
        // The runtime instrumentation's instruments (the runtime's own "System.Runtime" meter: dotnet.gc.*, dotnet.thread_pool.*).
        var metrics = Assert.Single(received, r => r.Path == "/v1/metrics");
        Assert.Equal("application/x-protobuf", metrics.ContentType);
        Assert.Contains("dotnet.gc.", Encoding.UTF8.GetString(metrics.Body));
    }

    [Fact]
    public void TracerProvider_Disabled_NoProviderAndNoSpans()
    {
        string sourceName = "Disabled." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(sourceName);
        using var providers = Providers(o => { o.Enabled = false; o.Sources = [sourceName]; });
        Assert.Null(providers.GetService<TracerProvider>());
        Assert.Null(source.StartActivity("x"));
    }

    [Fact]
    public void NoExporter_NewTracePropagatedNotRecorded_SampledCallerStillRecorded()
    {
        string sourceName = "NoExporter." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(sourceName);
        using var providers = Providers(o => o.Sources = [sourceName]);
        Assert.NotNull(providers.GetService<TracerProvider>());
        Assert.Null(providers.GetService<MeterProvider>()); // no OTLP endpoint: no meter provider either
        using (var root = source.StartActivity("root"))
        {
            Assert.NotNull(root); // exists: trace context still goes to the workers
            Assert.False(root.IsAllDataRequested);
            Assert.False(root.Recorded);
        }

        var sampledParent = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded, isRemote: true);
        using var child = source.StartActivity("child", ActivityKind.Server, sampledParent);
        Assert.NotNull(child);
        Assert.True(child.Recorded);
        Assert.True(child.IsAllDataRequested);
    }

    [Fact]
    public void WithExporter_NewTraceSampledAtRatio()
    {
        string sourceName = "Exporter." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(sourceName);
        var exporter = new ExportedSpans();
        using var providers = Providers(o =>
        {
            o.Sources = [sourceName];
            o.Configure = t => t.AddInMemoryExporter(exporter);
        });
        using (var root = source.StartActivity("root"))
        {
            Assert.NotNull(root);
            Assert.True(root.Recorded);
        }

        Assert.Single(exporter.Snapshot(), a => a.Source.Name == sourceName);
    }

    [Fact]
    public void TagHelpers_NullSpan_DoNothing()
    {
        GatewayTracing.TagRequest(null, "a", "m", "none");
        GatewayTracing.TagRouting(null, "w", "p", 1);
        GatewayTracing.TagQueueWait(null, TimeSpan.Zero);
        GatewayTracing.TagRetries(null, 0);
        Assert.Equal(3, GatewayTracing.DefaultSources.Count);
    }
}
