using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Proxy;

/// <summary>Failures of workers before and after the first byte, client cancels, and an empty fleet.</summary>
public sealed class ResilienceTests
{
    private const string Chat = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    private const string StreamChat = "{\"model\":\"llama3-8b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    private static Dictionary<string, string?> RoundRobin(string healthInterval = "01:00:00") => new()
    {
        ["Gateway:Routing:Policy"] = "round-robin",
        ["Gateway:Health:Interval"] = healthInterval,
    };

    [Fact]
    public async Task Chat_WorkerRefusesConnections_SucceedsOnAnotherAndMarksItUnhealthy()
    {
        await using var dead = await FakeWorker.StartAsync();
        await using var live = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([dead.Url, live.Url], RoundRobin());
        // Ready means one worker is known; both must be routing candidates, or "dead" would simply never be picked.
        for (int i = 0; i < 200 && gw.Workers.All.Any(w => w.Models.Count == 0); i++)
        {
            await Task.Delay(25);
        }

        Assert.All(gw.Workers.All, w => Assert.NotEmpty(w.Models));
        await dead.StopAsync(); // the port now refuses connections; the prober (1 h interval) has not noticed
        using var http = TestGateway.Client(gw);
        for (int i = 0; i < 4; i++)
        {
            var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        }

        Assert.Equal(4, live.InferenceCount);
        Assert.False(gw.Workers.All.Single(w => w.Prefix == dead.Url).Info.Healthy);
    }

    [Fact]
    public async Task Chat_Worker5xxBeforeFirstByte_RetriedOnAnother()
    {
        await using var bad = await FakeWorker.StartAsync();
        await using var good = await FakeWorker.StartAsync();
        bad.Mode = FakeMode.Status500;
        await using var gw = await TestGateway.StartAsync([bad.Url, good.Url], RoundRobin());
        using var http = TestGateway.Client(gw);
        for (int i = 0; i < 4; i++)
        {
            var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        }

        Assert.True(bad.InferenceCount >= 1, "the failing worker was tried");
        Assert.Equal(4, good.InferenceCount);
    }

    [Fact]
    public async Task Chat_OnlyWorkerAlways5xx_BoundedAttemptsThen502()
    {
        await using var bad = await FakeWorker.StartAsync();
        bad.Mode = FakeMode.Status500;
        await using var gw = await TestGateway.StartAsync([bad.Url], RoundRobin());
        using var http = TestGateway.Client(gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        Assert.Equal(HttpStatusCode.BadGateway, resp.StatusCode);
        using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        Assert.Equal("upstream_error", doc.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(3, bad.InferenceCount); // Resilience:MaxAttempts = 3
    }

    [Fact]
    public async Task Chat_AllWorkers429_429WithRetryAfter()
    {
        await using var busy = await FakeWorker.StartAsync();
        busy.Mode = FakeMode.Status429;
        await using var gw = await TestGateway.StartAsync([busy.Url], RoundRobin());
        using var http = TestGateway.Client(gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        Assert.Equal((HttpStatusCode)429, resp.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(2), resp.Headers.RetryAfter?.Delta);
    }

    [Fact]
    public async Task Stream_WorkerDiesMidStream_ClientGetsErrorEventAndNoRetry()
    {
        await using var w1 = await FakeWorker.StartAsync();
        await using var w2 = await FakeWorker.StartAsync();
        w1.Mode = w2.Mode = FakeMode.DieMidStream;
        await using var gw = await TestGateway.StartAsync([w1.Url, w2.Url], RoundRobin());
        using var http = TestGateway.Client(gw);
        using var resp = await http.SendAsync(Sse.ChatStream(StreamChat), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var events = await Sse.ReadAllAsync(resp);
        Assert.Equal(3, events.Count); // two chunks, then the error event, then the end (no [DONE])
        using var err = JsonDocument.Parse(events[^1].Data);
        Assert.Equal("upstream_connection_lost", err.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(1, w1.InferenceCount + w2.InferenceCount); // never retried after the first byte
    }

    [Fact]
    public async Task Stream_WorkerGoesSilent_IdleTimeoutEndsStreamWithErrorEvent()
    {
        await using var w = await FakeWorker.StartAsync();
        w.Mode = FakeMode.HangAfterFirstEvent;
        var extra = RoundRobin();
        extra["Gateway:Resilience:IdleTimeout"] = "00:00:00.500";
        await using var gw = await TestGateway.StartAsync([w.Url], extra);
        using var http = TestGateway.Client(gw);
        using var resp = await http.SendAsync(Sse.ChatStream(StreamChat), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(resp);
        Assert.Equal(2, events.Count);
        Assert.Contains("upstream_idle_timeout", events[1].Data);
        await w.AbortSeen.Task.WaitAsync(TimeSpan.FromSeconds(10)); // the worker's request was cancelled too
    }

    [Fact]
    public async Task Stream_ClientCancels_WorkerSeesAbort()
    {
        await using var w = await FakeWorker.StartAsync();
        w.StreamChunks = 200;
        w.ChunkDelay = TimeSpan.FromMilliseconds(50);
        await using var gw = await TestGateway.StartAsync([w.Url], RoundRobin());
        using var http = TestGateway.Client(gw);
        var resp = await http.SendAsync(Sse.ChatStream(StreamChat), HttpCompletionOption.ResponseHeadersRead);
        var stream = await resp.Content.ReadAsStreamAsync();
        var buf = new byte[256];
        Assert.True(await stream.ReadAsync(buf) > 0);
        resp.Dispose(); // client goes away mid-stream
        await w.AbortSeen.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, w.Aborted);
        for (int i = 0; i < 100 && gw.Workers.All[0].Info.InFlight != 0; i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal(0, gw.Workers.All[0].Info.InFlight); // load charge released
    }

    [Fact]
    public async Task Chat_NoHealthyWorker_503WithRetryAfter()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url], new Dictionary<string, string?> { ["Gateway:Health:Interval"] = "00:00:00.100" });
        await w.StopAsync();
        for (int i = 0; i < 200 && gw.Workers.AnyEligible; i++)
        {
            await Task.Delay(25);
        }

        Assert.False(gw.Workers.AnyEligible);
        using var http = TestGateway.Client(gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, resp.StatusCode);
        Assert.NotNull(resp.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await http.GetAsync("readyz")).StatusCode);
    }
}
