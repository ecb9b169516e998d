using Llm.Prompt.OpenAi;

namespace Worker.Tests.Host;

/// <summary>The worker with a host KV tier: retain hints naming a tier, prefetch, state and event fields.</summary>
public class HostTierProtocolTests
{
    private static Task<WorkerHost> StartAsync(int kvBlocks, int hostKvBlocks) =>
        WorkerHost.StartAsync(new WorkerOptions { Url = "http://127.0.0.1:0", KvBlocks = kvBlocks, HostKvBlocks = hostKvBlocks, TimeScale = 0 });

    private static int Cached(System.Text.Json.JsonElement e) => e.GetProperty("usage").GetProperty("prompt_tokens_details").GetProperty("cached_tokens").GetInt32();

    /// <summary>Runs the session's prompt, then enough other prompts to push it out of a small HBM pool; returns its body.</summary>
    private static async Task<string> RunThenFlushAsync(HttpClient http)
    {
        string body = TestWorkers.ChatBody(TestWorkers.Text(1500, "session"), 2);
        Assert.Equal(200, (await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-session-id", "s1"))).Status);
        for (int i = 0; i < 4; i++)
        {
            // The last one decodes 2,500 tokens: blocks never cached, free again once it finishes (room a prefetch may use).
            var flush = TestWorkers.ChatBody(TestWorkers.Text(1500, "flush" + i), i == 3 ? 2500 : 2);
            Assert.Equal(200, (await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", flush)).Status);
        }

        return body;
    }

    [Fact]
    public async Task ContextPushedOutOfHbm_IsReloadedFromHost_AndStateCountsTheHostHit()
    {
        await using var host = await StartAsync(kvBlocks: 400, hostKvBlocks: 3000);
        using var http = TestWorkers.Http(host);
        string body = await RunThenFlushAsync(http);
        int full = TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions).Length * 16;

        var (_, again) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-session-id", "s1"));

        Assert.Equal(full, Cached(again));
        var state = await TestWorkers.GetJsonAsync(http, "/worker/state");
        Assert.Equal(3000, state.GetProperty("host_kv_blocks_total").GetInt32());
        Assert.True(state.GetProperty("prefix_cache_host_hit_tokens").GetInt64() > 0);
        Assert.True(state.GetProperty("host_kv_reloaded_blocks_total").GetInt64() > 0);
        Assert.True(state.GetProperty("host_reload_seconds_per_token").GetDouble() > 0);
    }

    [Fact]
    public async Task Prefetch_BringsTheSessionBackIntoHbm_SoTheNextTurnReloadsNothing()
    {
        await using var host = await StartAsync(kvBlocks: 400, hostKvBlocks: 3000);
        using var http = TestWorkers.Http(host);
        string body = await RunThenFlushAsync(http);

        var (status, prefetched) = await TestWorkers.PostJsonAsync(http, "/worker/kv/prefetch", """{"session_id":"s1"}""");
        Assert.Equal(200, status);
        Assert.True(prefetched.GetProperty("loaded_blocks").GetInt32() > 0);
        long hostHitsBefore = (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("prefix_cache_host_hit_tokens").GetInt64();

        var (_, again) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-session-id", "s1"));

        Assert.Equal(TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions).Length * 16, Cached(again));
        Assert.Equal(hostHitsBefore, (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("prefix_cache_host_hit_tokens").GetInt64());
    }

    [Fact]
    public async Task RetainNamingTheHostTier_PinsThereAndReleaseDropsIt()
    {
        await using var host = await StartAsync(kvBlocks: 2000, hostKvBlocks: 4000);
        using var http = TestWorkers.Http(host);
        string body = TestWorkers.ChatBody(TestWorkers.Text(300, "session"), 2);
        int blocks = TestWorkers.BlockHashesOf(body, OpenAiEndpoint.ChatCompletions).Length;
        await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body, ("x-session-id", "s1"));

        var (status, retained) = await TestWorkers.PostJsonAsync(http, "/worker/kv/retain", """{"session_id":"s1","ttl_ms":60000,"tier":"host"}""");

        Assert.Equal(200, status);
        Assert.Equal("host", retained.GetProperty("tier").GetString());
        Assert.Equal(blocks, retained.GetProperty("pinned_blocks").GetInt32());
        var state = await TestWorkers.GetJsonAsync(http, "/worker/state");
        Assert.Equal(blocks, state.GetProperty("host_kv_blocks_pinned").GetInt32());
        Assert.Equal(0, state.GetProperty("kv_blocks_pinned").GetInt32());
        var snapshot = await TestWorkers.GetJsonAsync(http, "/worker/kv/snapshot");
        Assert.Equal(blocks, snapshot.GetProperty("host_block_hashes").GetArrayLength());

        var (_, released) = await TestWorkers.PostJsonAsync(http, "/worker/kv/release", """{"session_id":"s1"}""");
        Assert.Equal(blocks, released.GetProperty("released_blocks").GetInt32());
        Assert.Equal(0, (await TestWorkers.GetJsonAsync(http, "/worker/state")).GetProperty("host_kv_blocks_pinned").GetInt32());
    }

    [Theory]
    [InlineData("""{"session_id":"s1","ttl_ms":1000,"tier":"disk"}""", "tier")]
    [InlineData("""{"session_id":"s1","ttl_ms":1000,"tier":3}""", "tier")]
    [InlineData("""{"session_id":"s1","max_blocks":-1}""", "max_blocks")]
    public async Task BadTierOrBudget_IsAnInvalidRequestError(string body, string param)
    {
        await using var host = await StartAsync(kvBlocks: 200, hostKvBlocks: 400);
        using var http = TestWorkers.Http(host);
        string path = body.Contains("max_blocks", StringComparison.Ordinal) ? "/worker/kv/prefetch" : "/worker/kv/retain";

        var (status, error) = await TestWorkers.PostJsonAsync(http, path, body);

        Assert.Equal(400, status);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task RetainNamingTheHostTier_OnAWorkerWithoutOne_SaysSo()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 200);
        using var http = TestWorkers.Http(host);

        var (status, error) = await TestWorkers.PostJsonAsync(http, "/worker/kv/retain", """{"session_id":"s1","ttl_ms":1000,"tier":"host"}""");

        Assert.Equal(400, status);
        Assert.Equal("host_tier_unavailable", error.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public void HostKvBlocksOption_ParsesAutoAndRefusesTheGpuBackend()
    {
        var auto = WorkerCommandLine.Parse(["--host-kv-blocks", "auto"], out var errors, out _);
        Assert.Empty(errors);
        Assert.Equal(-1, auto.HostKvBlocks);

        WorkerCommandLine.Parse(["--host-kv-blocks", "-5"], out errors, out _);
        Assert.NotEmpty(errors);
        Assert.Contains((new WorkerOptions { Backend = "gpu", HostKvBlocks = 10 }).Validate(), e => e.Contains("host-kv-blocks", StringComparison.Ordinal));
        Assert.DoesNotContain((new WorkerOptions { Backend = "cpu", HostKvBlocks = 10 }).Validate(), e => e.Contains("host-kv-blocks", StringComparison.Ordinal));
    }
}
