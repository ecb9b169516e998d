using LoadGen.Client;
using LoadGen.Metrics;

namespace LoadGen.Tests.Client;

public sealed class SseChatClientTests : IAsyncLifetime
{
    private FakeOpenAiServer _server = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _server = await FakeOpenAiServer.StartAsync();
        _http = SseChatClient.CreateHttpClient();
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
    }

    private static ChatRequest Request(string? key = "sk-test-secret") => new()
    {
        Tenant = new Tenant("t1", key),
        Messages = [new ChatMessage("user", "hello")],
        MaxTokens = 8,
    };

    private Task<RequestResult> Send(ClientTimeouts? timeouts = null, Uri? target = null) =>
        new SseChatClient(_http, target ?? _server.BaseAddress, "fake-model", timeouts ?? ClientTimeouts.Default)
            .SendAsync(Request(), new RequestResult { Tenant = "t1" }, CancellationToken.None);

    [Fact]
    public async Task SendAsync_KnownChunkTimings_TtftItlTpotAndE2eAgreeWithEachOtherAndTheServerDelays()
    {
        // First token after 400 ms, then 5 more 100 ms apart. The server's delays are lower bounds the client must
        // see whatever the machine's load; the rest are identities between the client's own measurements (a stalled
        // client may read several chunks at once, so no ratio between two timings is asserted).
        _server.FirstDelay = TimeSpan.FromMilliseconds(400);
        _server.Gap = TimeSpan.FromMilliseconds(100);
        _server.Chunks = 6;

        var r = await Send();

        Assert.Equal(Outcome.Ok, r.Outcome);
        Assert.Equal(6, r.Chunks);
        Assert.Equal(5, r.ItlMs.Count);
        Assert.Equal(6, r.OutputTokens);
        Assert.Equal(50, r.PromptTokens);
        Assert.Equal(7, r.CachedTokens);
        Assert.Equal("tok0 tok1 tok2 tok3 tok4 tok5 ", r.Content);
        double ttft = r.TtftMs!.Value;
        Assert.True(ttft >= 390, $"TTFT {ttft} ms is below the server's 400 ms first-token delay");
        Assert.True(r.E2eMs >= 890, $"E2E {r.E2eMs} ms is below the server's 900 ms total delay");
        Assert.All(r.ItlMs, itl => Assert.True(itl >= 0));
        Assert.True(r.ItlMs.Sum() <= r.E2eMs - ttft + 0.001, "the inter-chunk gaps span at most the time after the first token");
        Assert.Equal((r.E2eMs - ttft) / 5, r.TpotMs!.Value, 6);
    }

    [Fact]
    public async Task SendAsync_SendsStreamingBodyWithUsageAndBearerKey()
    {
        var r = await Send();
        Assert.Equal(Outcome.Ok, r.Outcome);
        var body = _server.Bodies.Single().RootElement;
        Assert.True(body.GetProperty("stream").GetBoolean());
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal("fake-model", body.GetProperty("model").GetString());
        Assert.Equal(8, body.GetProperty("max_tokens").GetInt32());
        Assert.Equal("Bearer sk-test-secret", _server.AuthHeaders.Single());
    }

    [Fact]
    public async Task SendAsync_Server503_ErrorWithStatusAndCode()
    {
        _server.Behavior = _ => FakeBehavior.Error503;
        var r = await Send();
        Assert.Equal(Outcome.Error, r.Outcome);
        Assert.Equal(503, r.HttpStatus);
        Assert.Equal("http_503:no_healthy_worker", r.ErrorReason);
    }

    [Fact]
    public async Task SendAsync_ConnectionDroppedMidStream_Error()
    {
        _server.Behavior = _ => FakeBehavior.DropMidStream;
        var r = await Send();
        Assert.Equal(Outcome.Error, r.Outcome);
        Assert.StartsWith("stream", r.ErrorReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SendAsync_StreamEndsWithoutDone_Error()
    {
        _server.Behavior = _ => FakeBehavior.EndWithoutDone;
        var r = await Send();
        Assert.Equal(Outcome.Error, r.Outcome);
        Assert.Equal("stream_closed_before_done", r.ErrorReason);
    }

    [Fact]
    public async Task SendAsync_ServerNeverAnswers_TimesOutAsError()
    {
        _server.Behavior = _ => FakeBehavior.Hang;
        var r = await Send(new ClientTimeouts(TimeSpan.FromMilliseconds(300), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(10)));
        Assert.Equal(Outcome.Error, r.Outcome);
        Assert.Equal("timeout_first_token", r.ErrorReason);
        Assert.InRange(r.E2eMs, 250, 5000);
    }

    [Fact]
    public async Task SendAsync_TotalTimeoutShorterThanStream_TimeoutTotal()
    {
        Assert.Equal(Outcome.Ok, (await Send()).Outcome); // warm the connection and both ends' JIT
        _server.Gap = TimeSpan.FromMilliseconds(200);
        _server.Chunks = 30;
        var r = await Send(new ClientTimeouts(TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(5), TimeSpan.FromMilliseconds(1500)));
        Assert.Equal(Outcome.Error, r.Outcome);
        Assert.Equal("timeout_total", r.ErrorReason);
        Assert.NotNull(r.TtftMs);
    }

    [Fact]
    public async Task SendAsync_NothingListening_ConnectRefused()
    {
        // Bind a port, release it, and send there.
        var probe = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        probe.Start();
        int port = ((System.Net.IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        var r = await Send(target: new Uri($"http://127.0.0.1:{port}/"));
        Assert.Equal(Outcome.Error, r.Outcome);
        Assert.Equal("connect_refused", r.ErrorReason);
        Assert.Equal(0, r.HttpStatus);
    }

    [Fact]
    public async Task ModelDiscovery_FirstModelOfV1Models()
    {
        Assert.Equal("fake-model", await ModelDiscovery.FirstModelAsync(_http, _server.BaseAddress, null, CancellationToken.None));
    }
}
