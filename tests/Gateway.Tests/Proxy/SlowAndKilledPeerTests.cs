using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Tests.Proxy;

/// <summary>
/// Peers that die or crawl, against real servers on loopback: a worker process SIGKILLed before its first byte, clients
/// that trickle their request (slowloris) and a client that never reads its stream. Each test names what the client
/// gets; none may leave a request without an answer or hold a worker's KV blocks past a bounded time.
/// </summary>
public sealed class SlowAndKilledPeerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task WorkerProcessKilledBeforeItsFirstByte_RetriedOnTheOtherWorker_ClientGetsTheWholeAnswer()
    {
        // Time scale 2: the 24k-token prompt's prefill takes seconds, so the kill lands before any byte is written.
        await using var doomed = await ServerProcess.StartWorkerAsync("--profile", "h100-llama3-8b", "--time-scale", "2", "--kv-blocks", "8192",
            "--max-model-len", "131072", "--seed", "7");
        await using var healthy = await FaultKit.StartWorkerAsync(timeScale: 0.05);
        await using var gw = await TestGateway.StartAsync([doomed.Url, healthy.BaseAddress.GetLeftPart(UriPartial.Authority)], FaultKit.Settings());
        using var http = TestGateway.Client(gw);
        using var probe = new HttpClient();
        for (int attempt = 0; attempt < 6; attempt++)
        {
            var send = http.SendAsync(Sse.ChatStream(FaultKit.Body(FaultKit.LongPrompt + " " + attempt, 16)), HttpCompletionOption.ResponseHeadersRead);
            // Either the doomed worker takes it (it holds a request), or the healthy one answers it (too fast to poll).
            bool onDoomed = false;
            for (var wait = Stopwatch.StartNew(); !send.IsCompleted && wait.Elapsed < TimeSpan.FromSeconds(15);)
            {
                if (await FaultKit.StateAsync(probe, doomed.BaseAddress) != (0, 0, 0))
                {
                    onDoomed = true;
                    break;
                }

                await Task.Delay(10);
            }

            if (!onDoomed)
            {
                using var served = await send.WaitAsync(FaultKit.NoHang); // round-robin: the next request goes to the doomed worker
                await Sse.ReadAllAsync(served).WaitAsync(FaultKit.NoHang);
                continue;
            }

            Assert.False(send.IsCompleted); // in prefill on the doomed worker: nothing has reached the client
            var sw = Stopwatch.StartNew();
            doomed.Kill();
            using var resp = await send.WaitAsync(FaultKit.NoHang);
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
            var events = await Sse.ReadAllAsync(resp).WaitAsync(FaultKit.NoHang);
            output.WriteLine($"answered by the other worker {sw.ElapsedMilliseconds} ms after the SIGKILL, {events.Count} events");
            Assert.Equal("[DONE]", events[^1].Data);
            Assert.DoesNotContain(events, e => e.Data.Contains("\"error\"", StringComparison.Ordinal));
            Assert.True(await FaultKit.TimeUntilFreedAsync(probe, healthy.BaseAddress) <= TimeSpan.FromSeconds(1)); // nothing left held
            return;
        }

        Assert.Fail("no request reached the doomed worker");
    }

    [Fact]
    public async Task ClientTricklesItsHeaders_ConnectionClosedAfterRequestHeadersTimeout()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url], FaultKit.Settings(("Gateway:Limits:RequestHeadersTimeout", "00:00:02")));
        using var client = await ConnectAsync(gw.BaseAddress);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"));
        var sw = Stopwatch.StartNew();
        var answer = ReadToCloseAsync(stream);
        while (!answer.IsCompleted && sw.Elapsed < FaultKit.NoHang)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes("X")); // one byte of a header line every 200 ms, never ending it
            await Task.WhenAny(answer, Task.Delay(200));
        }

        string text = await answer.WaitAsync(FaultKit.NoHang);
        output.WriteLine($"closed after {sw.ElapsedMilliseconds} ms: {text.Split("\r\n")[0]}");
        Assert.StartsWith("HTTP/1.1 408", text); // Kestrel's own answer: 408, then the connection is closed
        Assert.InRange(sw.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(10));
        Assert.Equal(0, w.InferenceCount);
    }

    [Fact]
    public async Task ClientTricklesItsBody_Answered408AfterTheGracePeriod_NothingSentToAWorker()
    {
        await using var w = await FakeWorker.StartAsync();
        await using var gw = await TestGateway.StartAsync([w.Url], FaultKit.Settings(("Gateway:Limits:MinDataRateGracePeriod", "00:00:02")));
        using var client = await ConnectAsync(gw.BaseAddress);
        var stream = client.GetStream();
        string body = FaultKit.Body("hello", 8);
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TestGateway.DemoKey}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n"));
        var sw = Stopwatch.StartNew();
        var answer = ReadToCloseAsync(stream);
        int sent = 0;
        while (!answer.IsCompleted && sent < body.Length - 1 && sw.Elapsed < FaultKit.NoHang)
        {
            await stream.WriteAsync(Encoding.ASCII.GetBytes(body, sent++, 1)); // 5 bytes/s: under the 240 bytes/s minimum
            await Task.WhenAny(answer, Task.Delay(200));
        }

        string text = await answer.WaitAsync(FaultKit.NoHang);
        output.WriteLine($"answered after {sw.ElapsedMilliseconds} ms, {sent} of {body.Length} body bytes sent: {text.Split("\r\n")[0]}");
        Assert.StartsWith("HTTP/1.1 408", text);
        Assert.InRange(sw.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(10));
        Assert.True(sent < body.Length - 1, "the whole body went through before the gateway gave up");
        Assert.Equal(0, w.InferenceCount);
    }

    [Fact]
    public async Task StreamingClientNeverReads_DisconnectedAfterTheStallTimeout_WorkerStopsAndFreesItsBlocks()
    {
        await using var w = await FaultKit.StartWorkerAsync(timeScale: 0.02);
        await using var gw = await TestGateway.StartAsync([w.BaseAddress.GetLeftPart(UriPartial.Authority)],
            FaultKit.Settings(("Gateway:Limits:ClientStallTimeout", "00:00:02")));
        using var probe = new HttpClient();
        using var client = new TcpClient(AddressFamily.InterNetwork) { ReceiveBufferSize = 4096 }; // small window, then no reads
        await client.ConnectAsync(IPAddress.Loopback, gw.BaseAddress.Port);
        string body = JsonSerializer.Serialize(new
        {
            model = "llama3-8b",
            stream = true,
            max_tokens = 120_000,
            ignore_eos = true,
            messages = new[] { new { role = "user", content = "tell me everything" } },
        });
        await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes(
            $"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TestGateway.DemoKey}\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n\r\n{body}"));
        await FaultKit.WaitBusyAsync(probe, w.BaseAddress);
        var sw = Stopwatch.StartNew();
        var freed = await FaultKit.TimeUntilFreedAsync(probe, w.BaseAddress, TimeSpan.FromSeconds(50));
        output.WriteLine($"worker freed {freed.TotalMilliseconds:F0} ms after it took the request; the client never read");
        Assert.True(freed < TimeSpan.FromSeconds(45), "the worker still holds the request of a client that never reads");
        using (var state = JsonDocument.Parse(await probe.GetStringAsync(new Uri(w.BaseAddress, "worker/state"))))
        {
            long generated = state.RootElement.GetProperty("generated_tokens_total").GetInt64();
            output.WriteLine($"the worker generated {generated} of the 120000 tokens asked for");
            Assert.True(generated < 120_000, "the request ran to its end: it was not cancelled");
        }

        // What the client could still read: the start of the stream, then the connection closed, no [DONE] (not finished).
        string received = await ReadToCloseAsync(client.GetStream()).WaitAsync(FaultKit.NoHang);
        output.WriteLine($"the client had {received.Length} bytes waiting");
        Assert.StartsWith("HTTP/1.1 200", received);
        Assert.DoesNotContain("[DONE]", received, StringComparison.Ordinal);
    }

    private static async Task<TcpClient> ConnectAsync(Uri gateway)
    {
        var client = new TcpClient(AddressFamily.InterNetwork);
        await client.ConnectAsync(IPAddress.Loopback, gateway.Port);
        return client;
    }

    /// <summary>Everything the server sends until it closes the connection (or resets it).</summary>
    private static async Task<string> ReadToCloseAsync(NetworkStream stream)
    {
        var all = new MemoryStream();
        var buf = new byte[16384];
        try
        {
            int n;
            while ((n = await stream.ReadAsync(buf)) > 0)
            {
                all.Write(buf, 0, n);
            }
        }
        catch (IOException)
        {
        }

        return Encoding.UTF8.GetString(all.ToArray());
    }
}
