using System.Diagnostics;
using Gateway.Telemetry;
using Gateway.Tests.Infrastructure;
using OpenTelemetry.Trace;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// The real gateway's spans, exported by OpenTelemetry's in-memory exporter: the ASP.NET Core server span is the parent
/// of the gateway's own upstream span, which is the parent of the HttpClient span that YARP's forwarder sends to the
/// worker; the worker gets that client span as its W3C parent. No span carries the API key or the prompt.
/// </summary>
public sealed class GatewaySpansTests
{
    private const string Prompt = "the secret plan is in the blue folder";

    [Theory]
    [InlineData("01")]
    [InlineData("00")]
    public async Task NoExporter_WorkerGetsTheCallersTraceAndSampledFlag_ThroughTheGatewaysClientSpan(string flags)
    {
        await using var worker = await FakeWorker.StartAsync();
        await using var gateway = await TestGateway.StartAsync([worker.Url]); // tracing on, nothing exporting

        var callerTrace = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();
        using var http = TestGateway.Client(gateway);
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = TestGateway.Json("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"),
        };
        request.Headers.Add("traceparent", $"00-{callerTrace.ToHexString()}-{callerSpan.ToHexString()}-{flags}");
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();

        var (_, headers, _) = Assert.Single(worker.Requests, r => r.Path.EndsWith("/chat/completions", StringComparison.Ordinal));
        var parts = headers["traceparent"].Split('-');
        Assert.Equal(4, parts.Length);
        Assert.Equal(callerTrace.ToHexString(), parts[1]);
        Assert.NotEqual(callerSpan.ToHexString(), parts[2]); // a span of the gateway is the worker's parent
        Assert.Equal(flags, parts[3]);
    }

    [Fact]
    public async Task SampledCaller_ServerSpan_ParentsUpstreamSpan_ParentsHttpClientSpan()
    {
        var spans = new ExportedSpans();
        await using var worker = await FakeWorker.StartAsync();
        await using var gateway = await TestGateway.StartAsync([worker.Url],
            configureServices: s => s.ConfigureOpenTelemetryTracerProvider(t => t.AddInMemoryExporter(spans)));

        // A caller whose own trace is sampled: the gateway (parent-based sampling) records its part of it.
        var callerTrace = ActivityTraceId.CreateRandom();
        var callerSpan = ActivitySpanId.CreateRandom();
        using var http = TestGateway.Client(gateway); // sends our traceparent as it is
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = TestGateway.Json("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"" + Prompt + "\"}]}"),
        };
        request.Headers.Add("traceparent", $"00-{callerTrace.ToHexString()}-{callerSpan.ToHexString()}-01");
        using var response = await http.SendAsync(request);
        response.EnsureSuccessStatusCode();

        bool InTrace(Activity a) => a.TraceId == callerTrace;
        var server = await spans.WaitForAsync(a => InTrace(a) && a.Source.Name == "Microsoft.AspNetCore"
            && a.Kind == ActivityKind.Server && a.ParentSpanId == callerSpan, TimeSpan.FromSeconds(10));
        var upstream = await spans.WaitForAsync(a => InTrace(a) && a.DisplayName == GatewayTracing.UpstreamSpanName, TimeSpan.FromSeconds(10));
        var client = await spans.WaitForAsync(a => InTrace(a) && a.Source.Name == "System.Net.Http", TimeSpan.FromSeconds(10));

        Assert.Equal(GatewayTracing.SourceName, upstream.Source.Name);
        Assert.Equal(server.SpanId, upstream.ParentSpanId);
        Assert.Equal(upstream.SpanId, client.ParentSpanId);
        Assert.Equal(ActivityKind.Client, client.Kind);
        Assert.Equal(1, upstream.GetTagItem(GatewayTracing.Tags.Attempt));
        Assert.Equal("Delivered", upstream.GetTagItem(GatewayTracing.Tags.AttemptOutcome));
        Assert.Equal(worker.Url, upstream.GetTagItem(GatewayTracing.Tags.Worker) as string);
        Assert.Equal("llama3-8b", server.GetTagItem(GatewayTracing.Tags.Model));
        Assert.Equal(worker.Url, server.GetTagItem(GatewayTracing.Tags.Worker) as string);

        // The worker's request carried the client span as its parent.
        var (_, headers, _) = Assert.Single(worker.Requests, r => r.Path.EndsWith("/chat/completions", StringComparison.Ordinal));
        Assert.Equal($"00-{callerTrace.ToHexString()}-{client.SpanId.ToHexString()}-01", headers["traceparent"]);

        // Nothing secret in any span of the trace: not the key, not the prompt.
        foreach (var span in spans.Snapshot().Where(InTrace))
        {
            foreach (var (key, value) in span.TagObjects)
            {
                string text = value?.ToString() ?? "";
                Assert.DoesNotContain(TestGateway.DemoKey, text, StringComparison.Ordinal);
                Assert.DoesNotContain("secret plan", text, StringComparison.Ordinal);
                Assert.False(key.Contains("authorization", StringComparison.OrdinalIgnoreCase), key);
            }
        }
    }
}
