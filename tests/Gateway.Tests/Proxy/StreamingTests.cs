using System.Text.Json;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Proxy;

/// <summary>SSE pass-through: pacing, usage capture and stripping, hint headers.</summary>
public sealed class StreamingTests : OneFakeWorkerGateway
{
    [Fact]
    public async Task Stream_ClientDidNotAskUsage_GatewayAsksWorkerAndStripsUsageChunk()
    {
        using var http = TestGateway.Client(Host);
        using var resp = await http.SendAsync(Sse.ChatStream("{\"model\":\"llama3-8b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(resp);
        Assert.Equal(6, events.Count); // 5 chunks + [DONE], no usage chunk
        Assert.Equal("[DONE]", events[^1].Data);
        Assert.DoesNotContain(events, e => e.Data.Contains("\"usage\"", StringComparison.Ordinal));
        var sent = Upstream.Requests.Last();
        using var doc = JsonDocument.Parse(sent.Body);
        Assert.True(doc.RootElement.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        var usage = Host.Usage.Get("demo/default/demo-key");
        Assert.Equal(10, usage.PromptTokens);
        Assert.Equal(5, usage.CompletionTokens);
    }

    [Fact]
    public async Task Stream_ClientAskedUsage_UsageChunkDelivered()
    {
        using var http = TestGateway.Client(Host);
        using var resp = await http.SendAsync(Sse.ChatStream("{\"model\":\"llama3-8b\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(resp);
        Assert.Equal(7, events.Count);
        Assert.Contains("\"usage\"", events[^2].Data, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_PacedWorker_ChunksArrivePacedNotBuffered()
    {
        Upstream.StreamChunks = 6;
        Upstream.ChunkDelay = TimeSpan.FromMilliseconds(150);
        using var http = TestGateway.Client(Host);
        using var resp = await http.SendAsync(Sse.ChatStream("{\"model\":\"llama3-8b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"), HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(resp);
        Assert.Equal(7, events.Count);
        // The worker spaces 6 chunks 150 ms apart (750 ms). Had the gateway buffered, they would arrive together.
        var spread = events[5].At - events[0].At;
        Assert.True(spread >= TimeSpan.FromMilliseconds(750 * 0.6), $"chunks arrived within {spread.TotalMilliseconds} ms");
        // Most gaps keep the worker's pacing (timer jitter on a loaded machine may merge one or two).
        int paced = 0;
        for (int i = 1; i < 6; i++)
        {
            paced += events[i].At - events[i - 1].At >= TimeSpan.FromMilliseconds(150 * 0.3) ? 1 : 0;
        }

        Assert.True(paced >= 3, $"only {paced} of 5 gaps were paced");
    }

    [Fact]
    public async Task Chat_HintHeaders_SessionAndTenantSaltSentKeyNotForwarded()
    {
        using var http = TestGateway.Client(Host);
        var req = Sse.ChatStream("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
            ("x-claude-code-session-id", "sess-42"), ("x-cache-salt", "forged"), ("x-request-priority", "1000"));
        (await http.SendAsync(req)).EnsureSuccessStatusCode();
        var h = Upstream.Requests.Last().Headers;
        Assert.Equal(SessionIdentity.Scope("demo/default/demo-key", "sess-42"), h["x-session-id"]); // tenant-scoped, opaque
        Assert.Matches("^s[0-9a-f]{16}$", h["x-session-id"]);
        Assert.NotEqual("forged", h["x-cache-salt"]);
        Assert.Equal(32, h["x-cache-salt"].Length);
        Assert.False(h.ContainsKey("authorization"));
        // Only the gateway prioritises (under-share urgency, resumed agent turns): the client's value never reaches the worker.
        Assert.NotEqual("1000", h.GetValueOrDefault("x-request-priority"));
        var ctxSalt = Host.Services.GetService(typeof(Gateway.Auth.ApiKeyAuthenticator)) as Gateway.Auth.ApiKeyAuthenticator;
        Assert.Equal(ctxSalt!.SaltFor("demo/x/y"), h["x-cache-salt"]); // per org
        Assert.NotEqual(ctxSalt.SaltFor("other/x/y"), h["x-cache-salt"]);
    }

    [Fact]
    public void SessionScope_SameIdOfTwoTenants_Differs_SameTenantIsStable()
    {
        Assert.Equal(SessionIdentity.Scope("a/t/k", "default"), SessionIdentity.Scope("a/t/k", "default"));
        Assert.NotEqual(SessionIdentity.Scope("a/t/k", "default"), SessionIdentity.Scope("b/t/k", "default"));
        Assert.NotEqual(SessionIdentity.Scope("a/t/k", "x"), SessionIdentity.Scope("a/t/kx", "")); // the separator keeps (path, id) pairs apart
        Assert.Null(SessionIdentity.Scope("a/t/k", null));
    }

    [Fact]
    public async Task Chat_BodyCacheSalt_DroppedBeforeForwarding()
    {
        using var http = TestGateway.Client(Host);
        (await http.PostAsync("v1/chat/completions", TestGateway.Json("{\"model\":\"llama3-8b\",\"cache_salt\":\"steal\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"))).EnsureSuccessStatusCode();
        Assert.DoesNotContain("steal", Upstream.Requests.Last().Body, StringComparison.Ordinal);
    }

    [Fact]
    public void SessionIdentity_Precedence_HeaderThenCacheKeyThenUser()
    {
        var parsed = Parse("{\"model\":\"m\",\"user\":\"u1\",\"prompt_cache_key\":\"pk\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
        var headers = new Microsoft.AspNetCore.Http.HeaderDictionary();
        Assert.Equal(("pk", "prompt_cache_key"), SessionIdentity.Resolve(headers, parsed));
        headers["session_id"] = "codex-1";
        Assert.Equal(("codex-1", "session_id"), SessionIdentity.Resolve(headers, parsed));
        headers["x-session-id"] = "s0";
        Assert.Equal(("s0", "x-session-id"), SessionIdentity.Resolve(headers, parsed));
        Assert.Equal(("u1", "user"), SessionIdentity.Resolve(new Microsoft.AspNetCore.Http.HeaderDictionary(), Parse("{\"model\":\"m\",\"user\":\"u1\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}")));
    }

    private static Llm.Prompt.OpenAi.OpenAiRequest Parse(string json)
    {
        Assert.True(Llm.Prompt.OpenAi.OpenAiRequestParser.TryParse(System.Text.Encoding.UTF8.GetBytes(json), Llm.Prompt.OpenAi.OpenAiEndpoint.ChatCompletions, out var r, out _));
        return r!;
    }
}
