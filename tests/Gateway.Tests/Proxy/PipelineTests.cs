using System.Net;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Proxy;

/// <summary>Circuit breaker, Kestrel header limits and trace propagation.</summary>
public sealed class PipelineTests
{
    private const string Chat = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    [Fact]
    public async Task CircuitBreaker_Worker5xxRepeatedly_OpensAndWorkerGetsNoMoreTraffic()
    {
        await using var bad = await FakeWorker.StartAsync();
        await using var good = await FakeWorker.StartAsync();
        bad.Mode = FakeMode.Status500;
        await using var gw = await TestGateway.StartAsync([bad.Url, good.Url], new Dictionary<string, string?>
        {
            ["Gateway:Routing:Policy"] = "round-robin",
            ["Gateway:Health:Interval"] = "01:00:00",
            ["Gateway:Health:PassiveFailureThreshold"] = "1000", // only the breaker may take it out
            ["Gateway:Resilience:BreakerMinimumThroughput"] = "2",
            ["Gateway:Resilience:BreakerBreakDuration"] = "00:01:00",
        });
        using var http = TestGateway.Client(gw);
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat))).StatusCode);
        }

        var endpoint = gw.Workers.All.Single(w => w.Prefix == bad.Url);
        Assert.True(endpoint.CircuitOpen);
        Assert.False(endpoint.Info.Eligible);
        Assert.InRange(bad.InferenceCount, 2, 3); // round-robin would have sent it 5 of 10 without the breaker
        Assert.Equal(10, good.InferenceCount);
    }

    [Fact]
    public async Task Kestrel_HeadersOverLimit_431()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url], new Dictionary<string, string?> { ["Gateway:Limits:MaxRequestHeadersTotalSize"] = "4096" });
        using var http = TestGateway.Client(gw);
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(Chat) };
        req.Headers.TryAddWithoutValidation("x-padding", new string('p', 8000));
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, (await http.SendAsync(req)).StatusCode);
        Assert.Equal(0, w.InferenceCount);
    }

    [Fact]
    public async Task Traceparent_FromClient_SameTraceContinuesToWorker()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url]);
        using var http = TestGateway.Client(gw);
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(Chat) };
        req.Headers.TryAddWithoutValidation("traceparent", $"00-{traceId}-00f067aa0ba902b7-01");
        (await http.SendAsync(req)).EnsureSuccessStatusCode();
        var sent = w.Requests.Last().Headers;
        Assert.True(sent.TryGetValue("traceparent", out var tp), "worker got a traceparent");
        var parts = tp!.Split('-');
        Assert.Equal(traceId, parts[1]);
        Assert.NotEqual("00f067aa0ba902b7", parts[2]); // the gateway's own span is the parent
    }
}
