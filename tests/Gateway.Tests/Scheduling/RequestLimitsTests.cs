using System.Net;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Scheduling;

/// <summary>
/// Per-request priority (<c>x-priority</c>) within the tenant's classes, and requests-per-minute limits answered in
/// each API's shape: one fake worker, one slot (<c>MaxInFlightPerWorker=1</c>), so the queue's order is the order in
/// which the worker receives requests.
/// </summary>
public sealed class RequestLimitsTests : IAsyncLifetime
{
    private const string InteractiveKey = "sk-interactive";
    private const string BatchKey = "sk-batch";
    private const string LimitedKey = "sk-rpm";
    private FakeWorker _worker = null!;
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _worker = await FakeWorker.StartAsync();
        var settings = TestGateway.KeySettings((InteractiveKey, "i/team/key"), (BatchKey, "b/team/key"), (LimitedKey, "r/team/key"));
        foreach (var (k, v) in new Dictionary<string, string?>
        {
            ["Gateway:Scheduling:Tenants:0:Name"] = "b",
            ["Gateway:Scheduling:Tenants:0:Priority"] = "Batch",
            ["Gateway:Scheduling:Tenants:1:Name"] = "r",
            ["Gateway:Scheduling:Tenants:1:RequestsPerMinute"] = "2",
            ["Gateway:Scheduling:MaxInFlightPerWorker"] = "1",
            ["Gateway:Scheduling:TickInterval"] = "00:00:00.020",
        })
        {
            settings[k] = v;
        }

        _gw = await TestGateway.StartAsync([_worker.Url], settings);
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _worker.DisposeAsync();
    }

    private static HttpRequestMessage Chat(string text, string? priority = null, bool stream = false)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = TestGateway.Json(JsonSerializer.Serialize(new { model = "llama3-8b", stream, messages = new[] { new { role = "user", content = text } } })),
        };
        if (priority is not null)
        {
            req.Headers.Add("x-priority", priority);
        }

        return req;
    }

    /// <summary>The order in which the worker received the queued requests, by their prompt text.</summary>
    private async Task<string[]> ServedOrderAsync((HttpClient Client, string Text, string? Priority)[] queued)
    {
        var dispatcher = _gw.Services.GetRequiredService<GatewayScheduling>().Dispatcher;
        _worker.StreamChunks = 20;
        _worker.ChunkDelay = TimeSpan.FromMilliseconds(40);
        using var blockerClient = TestGateway.Client(_gw, InteractiveKey);
        var blocker = blockerClient.SendAsync(Chat("blocker", stream: true)); // holds the one slot for ~0.8 s
        await WaitUntil(() => dispatcher.InFlight == 1, "the blocker holds the slot");
        var sent = new List<Task<HttpResponseMessage>>();
        foreach (var (client, text, priority) in queued)
        {
            sent.Add(client.SendAsync(Chat(text, priority)));
            int expected = sent.Count;
            await WaitUntil(() => dispatcher.Queued == expected, $"{text} is queued");
        }

        Assert.Equal(HttpStatusCode.OK, (await blocker).StatusCode);
        foreach (var r in await Task.WhenAll(sent))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        return _worker.Requests.Select(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("messages")[0].GetProperty("content").GetString()!)
            .Where(t => t != "blocker").ToArray();
    }

    private static Task WaitUntil(Func<bool> condition, string what) => Gateway.Tests.State.RedisServer.WaitUntilAsync(condition, what);

    [Fact]
    public async Task ABatchHeader_LetsALaterInteractiveRequestGoFirst()
    {
        using var http = TestGateway.Client(_gw, InteractiveKey);
        var order = await ServedOrderAsync([(http, "batch-first", "batch"), (http, "interactive-second", null)]);
        Assert.Equal(["interactive-second", "batch-first"], order);
    }

    [Fact]
    public async Task ABatchTenantAskingForInteractive_IsClampedToBatch()
    {
        // The batch tenant's request is queued first and asks for interactive; clamped, it still waits behind the
        // interactive tenant's later request (unclamped, the earlier request of an equal-weight tenant goes first).
        using var batch = TestGateway.Client(_gw, BatchKey);
        using var interactive = TestGateway.Client(_gw, InteractiveKey);
        var order = await ServedOrderAsync([(batch, "batch-tenant-asks-interactive", "interactive"), (interactive, "interactive-tenant", null)]);
        Assert.Equal(["interactive-tenant", "batch-tenant-asks-interactive"], order);
    }

    [Fact]
    public async Task AnUnknownPriority_Is400InTheApisShape()
    {
        using var http = TestGateway.Client(_gw, InteractiveKey);
        var r = await http.SendAsync(Chat("x", "urgent"));
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        var e = JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("x-priority", e.GetProperty("param").GetString());
        Assert.Equal(0, _worker.InferenceCount);
    }

    [Fact]
    public async Task RequestsPerMinute_Is429WithRetryAfter_InEachApisShape()
    {
        using var http = TestGateway.Client(_gw, LimitedKey);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(Chat("one"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.SendAsync(Chat("two"))).StatusCode);

        var openAi = await http.SendAsync(Chat("three"));
        Assert.Equal(HttpStatusCode.TooManyRequests, openAi.StatusCode);
        Assert.True(openAi.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        var e = JsonDocument.Parse(await openAi.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("rate_limit_exceeded", e.GetProperty("code").GetString());
        Assert.Contains("Requests-per-minute", e.GetProperty("message").GetString());

        var anthropic = await http.PostAsync("/v1/messages", TestGateway.Json("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":"four"}]}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, anthropic.StatusCode);
        Assert.NotNull(anthropic.Headers.RetryAfter);
        var a = JsonDocument.Parse(await anthropic.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("rate_limit_error", a.GetProperty("error").GetProperty("type").GetString());

        var responses = await http.PostAsync("/v1/responses", TestGateway.Json("""{"model":"llama3-8b","input":"five"}"""));
        Assert.Equal(HttpStatusCode.TooManyRequests, responses.StatusCode);
        Assert.NotNull(responses.Headers.RetryAfter);
        Assert.Equal("rate_limit_exceeded", JsonDocument.Parse(await responses.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(2, _worker.InferenceCount);

        // another key is not limited by this one's window
        using var other = TestGateway.Client(_gw, InteractiveKey);
        Assert.Equal(HttpStatusCode.OK, (await other.SendAsync(Chat("other key"))).StatusCode);
    }
}
