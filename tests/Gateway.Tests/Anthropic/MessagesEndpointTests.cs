using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Anthropic;

/// <summary>POST /v1/messages and /v1/messages/count_tokens on a live gateway in front of a fake worker.</summary>
public sealed class MessagesEndpointTests : OneFakeWorkerGateway
{
    private HttpClient AnthropicClient(string? key = TestGateway.DemoKey)
    {
        var c = TestGateway.Client(Host, key: null);
        if (key is not null)
        {
            c.DefaultRequestHeaders.Add("x-api-key", key);
        }

        c.DefaultRequestHeaders.Add("anthropic-version", "2023-06-01");
        c.DefaultRequestHeaders.Add("anthropic-beta", "interleaved-thinking-2025-05-14");
        return c;
    }

    [Fact]
    public async Task Message_WithXApiKey_IsTranslatedToAChatCompletionAndBack()
    {
        using var c = AnthropicClient();
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/messages?beta=true")
        {
            Content = TestGateway.Json("""{"model":"llama3-8b","max_tokens":32,"system":[{"type":"text","text":"sys"}],"messages":[{"role":"user","content":[{"type":"text","text":"hello"}]}]}"""),
        };
        req.Headers.Add("X-Claude-Code-Session-Id", "cc-session-1");
        using var resp = await c.SendAsync(req);
        string text = await resp.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("application/json", resp.Content.Headers.ContentType?.MediaType);
        var m = JsonDocument.Parse(text).RootElement;
        Assert.Equal("message", m.GetProperty("type").GetString());
        Assert.Equal("llama3-8b", m.GetProperty("model").GetString());
        Assert.Equal("Hello from fake", m.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("end_turn", m.GetProperty("stop_reason").GetString());
        Assert.Equal(7, m.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal(3, m.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(5, m.GetProperty("usage").GetProperty("output_tokens").GetInt32());

        var (path, headers, body) = Assert.Single(Upstream.Requests);
        Assert.Equal("/v1/chat/completions", path);
        Assert.False(headers.ContainsKey("x-api-key"), "the client's key must not reach the worker");
        Assert.StartsWith("s", headers["x-session-id"], StringComparison.Ordinal); // the Claude Code session, scoped to the tenant
        var chat = JsonDocument.Parse(body).RootElement;
        Assert.Equal("system", chat.GetProperty("messages")[0].GetProperty("role").GetString());
        var usage = Host.Usage.Get("demo/default/demo-key");
        Assert.Equal(1, usage.Requests);
        Assert.Equal(3, usage.CachedTokens);
    }

    [Fact]
    public async Task SameClaudeCodeSession_MapsToTheSameWorkerSessionId_AsTheOpenAiPath()
    {
        using var c = AnthropicClient();
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/messages")
        {
            Content = TestGateway.Json("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"""),
        };
        req.Headers.Add("X-Claude-Code-Session-Id", "cc-same");
        (await c.SendAsync(req)).EnsureSuccessStatusCode();
        using var oc = TestGateway.Client(Host);
        using var req2 = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = TestGateway.Json("""{"model":"llama3-8b","messages":[{"role":"user","content":"hi"}]}"""),
        };
        req2.Headers.Add("X-Claude-Code-Session-Id", "cc-same");
        (await oc.SendAsync(req2)).EnsureSuccessStatusCode();
        var ids = Upstream.Requests.Select(r => r.Headers["x-session-id"]).ToArray();
        Assert.Equal(2, ids.Length);
        Assert.Equal(ids[0], ids[1]);
    }

    [Fact]
    public async Task StreamedMessage_ArrivesAsAnthropicEvents_WithToolUseAndUsage()
    {
        using var c = AnthropicClient();
        var resp = await c.PostAsync("/v1/messages", TestGateway.Json("""
            {"model":"llama3-8b","max_tokens":32,"stream":true,
             "tools":[{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}],
             "messages":[{"role":"user","content":"find it"}]}
            """));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        var events = AnthropicResponseTranslatorTests.Parse(await resp.Content.ReadAsStringAsync());
        Assert.Equal("message_start", events[0].Name);
        Assert.Equal("message_stop", events[^1].Name);
        var toolStart = events.First(e => e.Name == "content_block_start");
        Assert.Equal("tool_use", toolStart.Data.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal("lookup", toolStart.Data.GetProperty("content_block").GetProperty("name").GetString());
        var delta = events.Single(e => e.Name == "message_delta").Data;
        Assert.Equal("tool_use", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(3, delta.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(5, delta.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        Assert.Equal(events.Count(e => e.Name == "content_block_start"), events.Count(e => e.Name == "content_block_stop"));
        var body = JsonDocument.Parse(Upstream.Requests.Single().Body).RootElement;
        Assert.True(body.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal(5, Host.Usage.Get("demo/default/demo-key").CompletionTokens);
    }

    [Fact]
    public async Task BadKey_Gives401_InAnthropicShape()
    {
        using var c = AnthropicClient("sk-wrong");
        var resp = await c.PostAsync("/v1/messages", TestGateway.Json("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
        var e = JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("error", e.GetProperty("type").GetString());
        Assert.Equal("authentication_error", e.GetProperty("error").GetProperty("type").GetString());
        Assert.Empty(Upstream.Requests);
    }

    [Theory]
    [InlineData("""{"model":"llama3-8b","messages":[{"role":"user","content":"hi"}]}""", 400, "invalid_request_error", "max_tokens")]
    [InlineData("""{"model":"nope","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}""", 404, "not_found_error", "nope")]
    [InlineData("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}""", 400, "invalid_request_error", "tool_use_id")]
    [InlineData("not json", 400, "invalid_request_error", "JSON")]
    public async Task BadRequests_GiveAnthropicErrors_NeverAWorkerCall(string json, int status, string type, string mention)
    {
        using var c = AnthropicClient();
        var resp = await c.PostAsync("/v1/messages", TestGateway.Json(json));
        Assert.Equal(status, (int)resp.StatusCode);
        var e = JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("error", e.GetProperty("type").GetString());
        Assert.Equal(type, e.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains(mention, e.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Empty(Upstream.Requests);
    }

    [Fact]
    public async Task WorkerFailure_GivesAnAnthropicError()
    {
        Upstream.Mode = FakeMode.Status500;
        using var c = AnthropicClient();
        var resp = await c.PostAsync("/v1/messages", TestGateway.Json("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(502, (int)resp.StatusCode);
        var e = JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("api_error", e.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task CountTokens_CountsWithTheGatewayTokenizer_WithoutAWorker()
    {
        using var c = AnthropicClient();
        var small = await c.PostAsync("/v1/messages/count_tokens", TestGateway.Json("""{"model":"llama3-8b","messages":[{"role":"user","content":"hi"}]}"""));
        var large = await c.PostAsync("/v1/messages/count_tokens", TestGateway.Json("""{"model":"llama3-8b","system":"You are a careful assistant who reads files.","messages":[{"role":"user","content":"hi there, please read every file in the folder"}]}"""));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        int a = JsonDocument.Parse(await small.Content.ReadAsStringAsync()).RootElement.GetProperty("input_tokens").GetInt32();
        int b = JsonDocument.Parse(await large.Content.ReadAsStringAsync()).RootElement.GetProperty("input_tokens").GetInt32();
        Assert.True(a > 0 && b > a + 10, $"{a} vs {b}");
        Assert.Empty(Upstream.Requests);
        var bad = await c.PostAsync("/v1/messages/count_tokens", TestGateway.Json("""{"model":"nope","messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.NotFound, bad.StatusCode);
        Assert.Equal("not_found_error", JsonDocument.Parse(await bad.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task BearerToken_IsAcceptedToo()
    {
        using var c = TestGateway.Client(Host);
        var resp = await c.PostAsync("/v1/messages", TestGateway.Json("""{"model":"llama3-8b","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
    }
}
