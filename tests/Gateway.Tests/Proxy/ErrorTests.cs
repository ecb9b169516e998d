using System.Net;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Proxy;

/// <summary>Bad input gets a clear OpenAI-shaped error with the right status, and nothing reaches a worker.</summary>
public sealed class ErrorTests : IAsyncLifetime
{
    private const string LimitedKey = "sk-limited-1234";
    private FakeWorker _w = null!;
    private Gateway.Hosting.GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _w = await FakeWorker.StartAsync();
        _gw = await TestGateway.StartAsync([_w.Url], new Dictionary<string, string?>
        {
            ["Gateway:Limits:MaxBodyBytes"] = "65536",
            ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, LimitedKey),
            ["Gateway:Auth:Keys:0:Tenant"] = "acme/search/limited",
            ["Gateway:Auth:Keys:0:Models:0"] = "other-model",
            ["Gateway:Auth:Keys:1:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, "sk-capped"),
            ["Gateway:Auth:Keys:1:Tenant"] = "acme/search/capped",
            ["Gateway:Auth:Keys:1:MaxTokens"] = "100",
            ["Gateway:Auth:Keys:1:MaxN"] = "2",
        });
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _w.DisposeAsync();
    }

    private const string Chat = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

    private static async Task<JsonElement> ErrorOf(HttpResponseMessage resp)
    {
        using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        return doc.RootElement.GetProperty("error").Clone();
    }

    [Theory]
    [InlineData(null)]
    [InlineData("sk-wrong-key")]
    [InlineData("")]
    public async Task Chat_MissingOrInvalidKey_401InvalidApiKey(string? key)
    {
        using var http = TestGateway.Client(_gw, key);
        if (key == "")
        {
            http.DefaultRequestHeaders.TryAddWithoutValidation("Authorization", "Basic abc");
        }

        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        Assert.Equal(HttpStatusCode.Unauthorized, resp.StatusCode);
        Assert.Equal("invalid_api_key", (await ErrorOf(resp)).GetProperty("code").GetString());
        Assert.Equal(0, _w.InferenceCount);
    }

    [Fact]
    public async Task Models_InvalidKey_401()
    {
        using var http = TestGateway.Client(_gw, "nope");
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("v1/models")).StatusCode);
    }

    [Fact]
    public async Task Chat_ConfiguredHashedKey_Accepted()
    {
        using var http = TestGateway.Client(_gw, "sk-capped");
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.Equal(1, _gw.Usage.Get("acme/search/capped").Requests);
    }

    [Fact]
    public async Task Chat_ModelNotInAllowList_403()
    {
        using var http = TestGateway.Client(_gw, LimitedKey);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(Chat));
        Assert.Equal(HttpStatusCode.Forbidden, resp.StatusCode);
        var err = await ErrorOf(resp);
        Assert.Equal("model_not_allowed", err.GetProperty("code").GetString());
        Assert.Equal("model", err.GetProperty("param").GetString());
    }

    [Fact]
    public async Task Chat_MaxTokensOverTenantCap_400NamingParam()
    {
        using var http = TestGateway.Client(_gw, "sk-capped");
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json("{\"model\":\"llama3-8b\",\"max_tokens\":500,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        Assert.Equal("max_tokens", (await ErrorOf(resp)).GetProperty("param").GetString());
        resp = await http.PostAsync("v1/chat/completions", TestGateway.Json("{\"model\":\"llama3-8b\",\"n\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        Assert.Equal("n", (await ErrorOf(resp)).GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("{\"model\":\"llama3-8b\",\"messages\":[", "not valid JSON")]
    [InlineData("{\"model\":\"llama3-8b\"}", "messages")]
    [InlineData("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "role")]
    [InlineData("[1,2]", "JSON object")]
    [InlineData("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"\\ud800\"}]}", "lone UTF-16 surrogate")]
    [InlineData("{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"cache_salt\":\"\\udc00\"}", "lone UTF-16 surrogate")]
    public async Task Chat_MalformedBody_400WithMessageNamingProblem(string body, string expected)
    {
        using var http = TestGateway.Client(_gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(body));
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        Assert.Contains(expected, (await ErrorOf(resp)).GetProperty("message").GetString());
        Assert.Equal(0, _w.InferenceCount);
    }

    [Fact]
    public async Task Chat_BytesThatAreNotUtf8_400InvalidJson()
    {
        using var http = TestGateway.Client(_gw);
        byte[] body = [.. "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"a"u8, 0xC0, 0x80, 0xFF, .. "\"}]}"u8];
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var resp = await http.PostAsync("v1/chat/completions", content);
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        var error = await ErrorOf(resp);
        Assert.Equal("invalid_json", error.GetProperty("code").GetString());
        Assert.Equal("messages", error.GetProperty("param").GetString());
        Assert.Equal(0, _w.InferenceCount);
    }

    [Fact]
    public async Task Chat_DeeplyNestedJson_400()
    {
        using var http = TestGateway.Client(_gw);
        string deep = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"metadata\":" + new string('[', 200) + new string(']', 200) + "}";
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(deep));
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
    }

    [Fact]
    public async Task Chat_OversizedBody_413()
    {
        using var http = TestGateway.Client(_gw);
        string big = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 70_000) + "\"}]}";
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json(big));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, resp.StatusCode);
        Assert.Equal("request_too_large", (await ErrorOf(resp)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Chat_OversizedChunkedBody_413()
    {
        using var http = TestGateway.Client(_gw);
        string big = "{\"model\":\"llama3-8b\",\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 70_000) + "\"}]}";
        var content = new StreamContent(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(big)));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = content };
        req.Headers.TransferEncodingChunked = true;
        var resp = await http.SendAsync(req);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, resp.StatusCode);
    }

    [Fact]
    public async Task Chat_UnknownModel_404ModelNotFound()
    {
        using var http = TestGateway.Client(_gw);
        var resp = await http.PostAsync("v1/chat/completions", TestGateway.Json("{\"model\":\"gpt-9\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"));
        Assert.Equal(HttpStatusCode.NotFound, resp.StatusCode);
        Assert.Equal("model_not_found", (await ErrorOf(resp)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task UnknownV1Path_404OpenAiShape()
    {
        using var http = TestGateway.Client(_gw);
        var resp = await http.PostAsync("v1/fine_tuning/jobs", TestGateway.Json("{}"));
        Assert.Equal(HttpStatusCode.NotFound, resp.StatusCode);
        Assert.Equal("unknown_url", (await ErrorOf(resp)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Healthz_And_Readyz_ReportLiveAndReady()
    {
        using var http = TestGateway.Client(_gw, null);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("readyz")).StatusCode);
    }
}
