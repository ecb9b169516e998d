using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Worker;
using Xunit.Abstractions;

namespace Gateway.Tests.Proxy;

/// <summary>
/// Faults against real servers on loopback: reference workers (<see cref="WorkerHost"/>, real Kestrel, real engine)
/// stopped mid-stream, a worker that accepts and never answers, a worker answering garbage
/// SSE, and clients cancelling before the first byte and mid-stream. Each test names what the client gets; none may
/// leave a request without an answer, and a cancel must free the worker's KV blocks (read from <c>/worker/state</c>). Cancelling while queued in the gateway is <c>GatewayFairQueueTests.Queued_ClientCancels_RequestLeavesQueue</c>.
/// </summary>
public sealed class FaultInjectionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan NoHang = FaultKit.NoHang;

    [Fact]
    public async Task ClientCancelsBeforeFirstByte_WorkerFreesItsBlocksWithin1s()
    {
        await using var w = await FaultKit.StartWorkerAsync(timeScale: 2);
        await using var gw = await TestGateway.StartAsync([w.BaseAddress.GetLeftPart(UriPartial.Authority)], FaultKit.Settings());
        using var http = TestGateway.Client(gw);
        using var probe = new HttpClient();
        using var cts = new CancellationTokenSource();
        var send = http.SendAsync(Sse.ChatStream(FaultKit.Body(FaultKit.LongPrompt, 16)), HttpCompletionOption.ResponseHeadersRead, cts.Token);
        await FaultKit.WaitBusyAsync(probe, w.BaseAddress);
        Assert.False(send.IsCompleted); // still in prefill: no byte has reached the client
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send); // the client gets: its own cancellation
        var freed = await FaultKit.TimeUntilFreedAsync(probe, w.BaseAddress);
        output.WriteLine($"blocks freed {freed.TotalMilliseconds:F0} ms after the cancel (before first byte)");
        Assert.True(freed <= TimeSpan.FromSeconds(1), $"freed after {freed}");
    }

    [Fact]
    public async Task ClientCancelsMidStream_WorkerFreesItsBlocksWithin1s()
    {
        await using var w = await FaultKit.StartWorkerAsync(timeScale: 1);
        await using var gw = await TestGateway.StartAsync([w.BaseAddress.GetLeftPart(UriPartial.Authority)], FaultKit.Settings());
        // No drain: HttpClient would otherwise keep reading a disposed response for up to 2 s to reuse the connection,
        // and the client would not really be gone until then.
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0, ResponseDrainTimeout = TimeSpan.Zero }) { BaseAddress = gw.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new("Bearer", TestGateway.DemoKey);
        using var probe = new HttpClient();
        var resp = await http.SendAsync(Sse.ChatStream(FaultKit.Body("tell me a long story", 2000)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var stream = await resp.Content.ReadAsStreamAsync();
        var buf = new byte[512];
        Assert.True(await stream.ReadAsync(buf) > 0); // tokens are flowing
        Assert.NotEqual((0, 0, 0), await FaultKit.StateAsync(probe, w.BaseAddress));
        resp.Dispose(); // the client goes away mid-stream
        var freed = await FaultKit.TimeUntilFreedAsync(probe, w.BaseAddress);
        output.WriteLine($"blocks freed {freed.TotalMilliseconds:F0} ms after the cancel (mid-stream)");
        Assert.True(freed <= TimeSpan.FromSeconds(1), $"freed after {freed}");
    }

    [Fact]
    public async Task WorkerKilledMidStream_ClientGetsItsTokensThenAnErrorEvent_NoHang()
    {
        await using var w = await FaultKit.StartWorkerAsync(timeScale: 1);
        await using var gw = await TestGateway.StartAsync([w.BaseAddress.GetLeftPart(UriPartial.Authority)], FaultKit.Settings());
        using var http = TestGateway.Client(gw);
        using var resp = await http.SendAsync(Sse.ChatStream(FaultKit.Body("tell me a long story", 2000)), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var reading = Sse.ReadAllAsync(resp);
        await Task.Delay(300); // some tokens delivered
        await w.DisposeAsync(); // the worker dies with the stream open
        var events = await reading.WaitAsync(NoHang); // the stream ends: never a hang
        Assert.True(events.Count >= 2);
        // The client gets its tokens, then one OpenAI-shaped error event: the worker's own ("shutting down") when it
        // could still write it, else the gateway's upstream_connection_lost.
        var errors = events.Where(e => e.Data.StartsWith("{\"error\"", StringComparison.Ordinal)).ToList();
        Assert.Single(errors);
        using var err = JsonDocument.Parse(errors[0].Data);
        Assert.Equal("server_error", err.RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task WorkerAcceptsAndNeverAnswers_ClientGets504InOpenAiShape_WithinTheFirstByteTimeout()
    {
        await using var stall = new ScriptedWorker(ScriptedFault.Stall);
        await using var gw = await TestGateway.StartAsync([stall.Url], FaultKit.Settings(("Gateway:Resilience:FirstByteTimeout", "00:00:01")));
        using var http = TestGateway.Client(gw);
        var sw = Stopwatch.StartNew();
        using var resp = await http.SendAsync(Sse.ChatStream(FaultKit.Body("hello", 8))).WaitAsync(NoHang);
        output.WriteLine($"answered {resp.StatusCode} after {sw.ElapsedMilliseconds} ms");
        Assert.Equal(HttpStatusCode.GatewayTimeout, resp.StatusCode);
        using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        Assert.Equal("server_error", doc.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.True(stall.Posts >= 1);
    }

    [Fact]
    public async Task WorkerAnswersGarbageSse_ClientGetsTheStreamEndedByAnErrorEvent_NoHang()
    {
        await using var garbage = new ScriptedWorker(ScriptedFault.GarbageSse);
        await using var gw = await TestGateway.StartAsync([garbage.Url], FaultKit.Settings());
        using var http = TestGateway.Client(gw);
        using var resp = await http.SendAsync(Sse.ChatStream(FaultKit.Body("hello", 8)), HttpCompletionOption.ResponseHeadersRead).WaitAsync(NoHang);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        var events = await Sse.ReadAllAsync(resp).WaitAsync(NoHang);
        output.WriteLine(string.Join('\n', events.Select(e => e.Data)));
        using var err = JsonDocument.Parse(events[^1].Data);
        Assert.Equal("upstream_stream_incomplete", err.RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(1, garbage.Posts); // bytes reached the client: never retried
    }

    [Fact]
    public async Task WorkerStreamsAnErrorAsItsFirstEvent_RetriedOnAnotherWorker_ClientGetsTheAnswer()
    {
        await using var failing = new ScriptedWorker(ScriptedFault.ErrorFirstEvent);
        await using var healthy = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([failing.Url, healthy.Url], FaultKit.Settings());
        using var http = TestGateway.Client(gw);
        int sent = 0;
        while (sent < 40 && (failing.Posts == 0 || sent < 4))
        {
            // Round-robin sends every other request to the failing worker first, once its probe has made it eligible.
            using var resp = await http.SendAsync(Sse.ChatStream(FaultKit.Body("hello " + sent, 8)), HttpCompletionOption.ResponseHeadersRead).WaitAsync(NoHang);
            sent++;
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
            var events = await Sse.ReadAllAsync(resp).WaitAsync(NoHang);
            Assert.Equal("[DONE]", events[^1].Data);
            Assert.DoesNotContain(events, e => e.Data.Contains("\"error\"", StringComparison.Ordinal));
            if (failing.Posts == 0)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(failing.Posts >= 1, "the failing worker was never tried");
        Assert.Equal(sent, healthy.InferenceCount); // every request, retried or not, was answered by the healthy worker
    }
}
