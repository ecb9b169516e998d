using System.Text;
using System.Text.Json;
using Llm.Prompt.OpenAi;

namespace Worker.Tests.Host;

/// <summary>/worker/state, /worker/kv/events (+ resync), /worker/kv/snapshot, retain/release and the hint headers.</summary>
public sealed class WorkerProtocolTests
{
    private static readonly string[] StateKeys =
    [
        "model", "profile", "block_size", "kv_blocks_total", "kv_blocks_used", "kv_blocks_pinned", "kv_blocks_cached",
        "waiting_requests", "running_requests", "waiting_tokens", "tokens_per_second", "prefill_tokens_per_second",
        "decode_step_seconds", "prefix_cache_query_tokens", "prefix_cache_hit_tokens", "pins_dropped_total", "kv_event_seq", "time_scale",
    ];

    [Fact]
    public async Task State_HasEveryProtocolField_AndCountsARequest()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 1000);
        using var http = TestWorkers.Http(host);
        var before = await TestWorkers.GetJsonAsync(http, "/worker/state");
        foreach (var k in StateKeys)
        {
            Assert.True(before.TryGetProperty(k, out _), $"missing {k}");
        }

        Assert.Equal("llama3-8b", before.GetProperty("model").GetString());
        Assert.Equal("h100-llama3-8b", before.GetProperty("profile").GetString());
        Assert.Equal(1000, before.GetProperty("kv_blocks_total").GetInt32());
        Assert.Equal(16, before.GetProperty("block_size").GetInt32());
        Assert.Equal(0, before.GetProperty("kv_event_seq").GetInt64());
        Assert.Equal(JsonValueKind.Null, before.GetProperty("kv_eviction_age_s").ValueKind); // nothing evicted yet

        string body = TestWorkers.ChatBody(TestWorkers.Text(400, "state"), 3);
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);
        var after = await TestWorkers.GetJsonAsync(http, "/worker/state");
        Assert.True(after.GetProperty("kv_blocks_cached").GetInt32() > 0);
        Assert.True(after.GetProperty("prefix_cache_hit_tokens").GetInt64() > 0);
        Assert.True(after.GetProperty("prefix_cache_query_tokens").GetInt64() > after.GetProperty("prefix_cache_hit_tokens").GetInt64());
        Assert.True(after.GetProperty("kv_event_seq").GetInt64() > 0);
        Assert.Equal(0, after.GetProperty("running_requests").GetInt32());
        Assert.Equal(0, after.GetProperty("kv_blocks_used").GetInt32());
    }

    [Fact]
    public async Task State_ReportsTheEvictionAge_OnceThePrefixCacheHasEvicted()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 64);
        using var http = TestWorkers.Http(host);
        string a = TestWorkers.ChatBody(TestWorkers.Text(400, "evict-a"), 2);
        string b = TestWorkers.ChatBody(TestWorkers.Text(400, "evict-b"), 2);
        Assert.True(TestWorkers.BlockHashesOf(a, OpenAiEndpoint.ChatCompletions).Length > 32); // two do not fit in 64 blocks
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", a);
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", b);

        var state = await TestWorkers.GetJsonAsync(http, "/worker/state");
        Assert.Equal(JsonValueKind.Number, state.GetProperty("kv_eviction_age_s").ValueKind);
        Assert.True(state.GetProperty("kv_eviction_age_s").GetDouble() >= 0);
    }

    [Theory]
    [InlineData("default")]
    [InlineData("o200k_base")]
    [InlineData("cl100k_base")]
    public async Task KvEvents_StoredEventCarriesTheRequestsBlockHashes_SameAsGatewayComputes(string tokenizer)
    {
        await using var host = await TestWorkers.StartAsync(tokenizer: tokenizer);
        using var http = TestWorkers.Http(host);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using var sse = await SseReader.OpenAsync(http, "/worker/kv/events?after=0", cts.Token);

        string body = TestWorkers.ChatBody(TestWorkers.Text(300, "events"), 2);
        var expected = TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions, salt: "acme", tokenizer: tokenizer);
        Assert.True(expected.Length >= 4);
        if (tokenizer != "default")
        {
            // The setting matters: another vocabulary's ids give other hashes.
            Assert.NotEqual(TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions, salt: "acme")[0], expected[0]);
        }

        var (status, answer) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-cache-salt", "acme"));
        Assert.Equal(200, status);
        Assert.Equal(TestWorkers.PromptTokensOf(body, OpenAiEndpoint.ChatCompletions, tokenizer), answer.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());

        var stored = new HashSet<ulong>();
        long lastSeq = 0;
        while (!expected.All(stored.Contains))
        {
            var (name, data) = await sse.NextAsync(cts.Token);
            Assert.Equal("kv", name);
            var e = JsonDocument.Parse(data).RootElement;
            long seq = e.GetProperty("seq").GetInt64();
            Assert.True(seq > lastSeq, "seq increases");
            lastSeq = seq;
            Assert.Equal(16, e.GetProperty("block_size").GetInt32());
            if (e.GetProperty("type").GetString() == "stored")
            {
                foreach (var h in e.GetProperty("block_hashes").EnumerateArray())
                {
                    stored.Add(h.GetUInt64());
                }
            }
        }

        var snapshot = await TestWorkers.GetJsonAsync(http, "/worker/kv/snapshot");
        var snapHashes = snapshot.GetProperty("block_hashes").EnumerateArray().Select(h => h.GetUInt64()).ToHashSet();
        Assert.Subset(snapHashes, expected.ToHashSet());
        Assert.True(snapshot.GetProperty("seq").GetInt64() >= lastSeq);
    }

    [Fact]
    public async Task KvEvents_AfterOlderThanRing_ResyncFirst_ThenSnapshotHasEverything()
    {
        await using var host = await TestWorkers.StartAsync(kvEventCapacity: 3);
        using var http = TestWorkers.Http(host);
        var all = new List<ulong>();
        for (int i = 0; i < 6; i++)
        {
            string body = TestWorkers.ChatBody(TestWorkers.Text(100, $"ring{i}"), 1);
            all.AddRange(TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions));
            await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);
        }

        long seqNow = (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("kv_event_seq").GetInt64();
        Assert.True(seqNow > 3);

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await using (var sse = await SseReader.OpenAsync(http, "/worker/kv/events?after=1", cts.Token))
        {
            var (name, data) = await sse.NextAsync(cts.Token);
            Assert.Equal("resync", name);
            Assert.Equal(seqNow, JsonDocument.Parse(data).RootElement.GetProperty("seq").GetInt64());
        }

        var snapshot = await TestWorkers.GetJsonAsync(http, "/worker/kv/snapshot");
        Assert.Equal(seqNow, snapshot.GetProperty("seq").GetInt64());
        var snapHashes = snapshot.GetProperty("block_hashes").EnumerateArray().Select(h => h.GetUInt64()).ToHashSet();
        Assert.Subset(snapHashes, all.ToHashSet());

        // A consumer that is up to date gets no resync: the next thing is the next event.
        await using (var sse = await SseReader.OpenAsync(http, $"/worker/kv/events?after={seqNow}", cts.Token))
        {
            await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody(TestWorkers.Text(100, "ring-new"), 1));
            var (name, data) = await sse.NextAsync(cts.Token);
            Assert.Equal("kv", name);
            Assert.Equal(seqNow + 1, JsonDocument.Parse(data).RootElement.GetProperty("seq").GetInt64());
        }
    }

    [Fact]
    public async Task RetainAndRelease_BySession_PinsReportedInState()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 2000);
        using var http = TestWorkers.Http(host);
        string body = TestWorkers.ChatBody(TestWorkers.Text(300, "session"), 2);
        int blocks = TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions).Length;
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-session-id", "sess-1"));

        var (status, retained) = await TestWorkers.PostJsonAsync(http, "/worker/kv/retain", """{"session_id":"sess-1","ttl_ms":60000,"priority":1,"value":2.5}""");
        Assert.Equal(200, status);
        Assert.Equal(blocks, retained.GetProperty("pinned_blocks").GetInt32());
        Assert.Equal(0, retained.GetProperty("dropped_pins").GetInt32());
        Assert.Equal(blocks, (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("kv_blocks_pinned").GetInt32());

        var (_, released) = await TestWorkers.PostJsonAsync(http, "/worker/kv/release", """{"session_id":"sess-1"}""");
        Assert.Equal(blocks, released.GetProperty("released_blocks").GetInt32());
        Assert.Equal(0, (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("kv_blocks_pinned").GetInt32());
    }

    [Fact]
    public async Task RetainByBlockHashes_ThenReleaseByHashes()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 2000);
        using var http = TestWorkers.Http(host);
        string body = TestWorkers.ChatBody(TestWorkers.Text(200, "hashes"), 1);
        var hashes = TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions);
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);

        string list = string.Join(",", hashes);
        var (_, retained) = await TestWorkers.PostJsonAsync(http, "/worker/kv/retain", $$"""{"block_hashes":[{{list}}],"ttl_ms":60000}""");
        Assert.Equal(hashes.Length, retained.GetProperty("pinned_blocks").GetInt32());
        var (_, released) = await TestWorkers.PostJsonAsync(http, "/worker/kv/release", $$"""{"block_hashes":[{{list}}]}""");
        Assert.Equal(hashes.Length, released.GetProperty("released_blocks").GetInt32());
    }

    [Fact]
    public async Task PriorityHeader_WaitingRequestWithHigherPriority_IsAdmittedFirst()
    {
        // One running sequence at a time: `busy` runs, `fresh` waits, then `resumed` (x-request-priority: 5) arrives and
        // is admitted before `fresh`, so it finishes while `fresh` has not started.
        await using var host = await WorkerHost.StartAsync(new WorkerOptions { Url = "http://127.0.0.1:0", KvBlocks = 4096, TimeScale = 1, MaxRunningSequences = 1 });
        using var http = TestWorkers.Http(host);
        // `busy` decodes for ~7 s of wall time, so both later requests are waiting before it ends even on a loaded machine.
        var busy = TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody("busy", 1000));
        Assert.True(await TestWorkers.EventuallyAsync(() => host.GetEngineState().RunningRequests == 1, TimeSpan.FromSeconds(10)));
        var fresh = TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody("fresh work", 50));
        Assert.True(await TestWorkers.EventuallyAsync(() => host.GetEngineState().WaitingRequests == 1, TimeSpan.FromSeconds(10)));
        var resumed = TestWorkers.PostJsonAsync(http, "/v1/chat/completions", TestWorkers.ChatBody("resumed turn", 4), ("x-request-priority", "5"));
        Assert.True(await TestWorkers.EventuallyAsync(() => host.GetEngineState().WaitingRequests == 2, TimeSpan.FromSeconds(10)));

        var first = await Task.WhenAny(fresh, resumed);
        Assert.Same(resumed, first);
        Assert.Equal(200, (await resumed).Status);
        Assert.Equal(200, (await fresh).Status);
        Assert.Equal(200, (await busy).Status);
    }

    [Fact]
    public async Task RetentionTtlHeader_PinsTheSessionsBlocksWhenTheRequestFinishes()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 2000);
        using var http = TestWorkers.Http(host);
        string body = TestWorkers.ChatBody(TestWorkers.Text(300, "ttl"), 2);
        int blocks = TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions).Length;
        var (status, _) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-session-id", "agent-7"), ("x-retention-ttl-ms", "60000"));
        Assert.Equal(200, status);
        Assert.Equal(blocks, (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("kv_blocks_pinned").GetInt32());

        var (_, released) = await TestWorkers.PostJsonAsync(http, "/worker/kv/release", """{"session_id":"agent-7"}""");
        Assert.Equal(blocks, released.GetProperty("released_blocks").GetInt32());
    }
}

/// <summary>Minimal SSE reader over a real HTTP response: yields (event name, data).</summary>
internal sealed class SseReader : IAsyncDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private SseReader(HttpResponseMessage response, StreamReader reader)
    {
        _response = response;
        _reader = reader;
    }

    public static async Task<SseReader> OpenAsync(HttpClient http, string path, CancellationToken ct)
    {
        var resp = await http.GetAsync(path, HttpCompletionOption.ResponseHeadersRead, ct);
        Assert.Equal(200, (int)resp.StatusCode);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType!.MediaType);
        return new SseReader(resp, new StreamReader(await resp.Content.ReadAsStreamAsync(ct), Encoding.UTF8));
    }

    public async Task<(string Event, string Data)> NextAsync(CancellationToken ct)
    {
        string name = "message";
        var data = new StringBuilder();
        while (true)
        {
            string? line = await _reader.ReadLineAsync(ct) ?? throw new EndOfStreamException("SSE stream ended");
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    return (name, data.ToString());
                }

                name = "message";
                continue;
            }

            if (line.StartsWith(':'))
            {
                continue;
            }

            if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                name = line["event: ".Length..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data.Append(line["data: ".Length..]);
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _response.Dispose();
        return ValueTask.CompletedTask;
    }
}
