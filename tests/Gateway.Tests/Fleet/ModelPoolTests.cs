using System.Net;
using System.Text.Json;
using Gateway.Hosting;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Fleet;

/// <summary>
/// Three fake workers serving three models (three pools) behind one gateway: a model routes only within its pool,
/// aliases (global and per key) and a 50/50 split reach the right pool with the served name in the body, unknown names
/// get a 404 in each API's shape, /v1/models lists what each key may send, and other /v1 paths naming a model are
/// passed through to its pool.
/// </summary>
public sealed class ModelPoolTests : IAsyncLifetime
{
    private const string LimitedKey = "sk-limited-0001";
    private FakeWorker _llama = null!;
    private FakeWorker _canary = null!;
    private FakeWorker _qwen = null!;
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _llama = await FakeWorker.StartAsync("llama3-8b");
        _canary = await FakeWorker.StartAsync("llama3-8b-canary");
        _qwen = await FakeWorker.StartAsync("qwen-7b");
        _gw = await TestGateway.StartAsync([_llama.Url, _canary.Url, _qwen.Url], new Dictionary<string, string?>
        {
            ["Gateway:Models:Aliases:claude-sonnet-4-5"] = "qwen-7b",
            ["Gateway:Models:Aliases:gpt-5-codex"] = "llama3-70b", // nobody serves it
            ["Gateway:Models:Splits:coder:0:Model"] = "llama3-8b",
            ["Gateway:Models:Splits:coder:0:Weight"] = "50",
            ["Gateway:Models:Splits:coder:1:Model"] = "llama3-8b-canary",
            ["Gateway:Models:Splits:coder:1:Weight"] = "50",
            ["Gateway:Auth:Keys:0:Hash"] = Gateway.Auth.ApiKeyAuthenticator.HashKey(TestGateway.Secret, LimitedKey),
            ["Gateway:Auth:Keys:0:Tenant"] = "acme/dev/limited",
            ["Gateway:Auth:Keys:0:Models:0"] = "llama3-8b",
            ["Gateway:Auth:Keys:0:Aliases:claude-sonnet-4-5"] = "llama3-8b",
        });
        // Every pool known before the first request (the prober reads each worker's /v1/models).
        for (int i = 0; i < 200 && _gw.Workers.Models.Count < 3; i++)
        {
            await Task.Delay(25);
        }
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _llama.DisposeAsync();
        await _canary.DisposeAsync();
        await _qwen.DisposeAsync();
    }

    private static StringContent Chat(string model) => TestGateway.Json($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""");

    private static string BodyModel(FakeWorker w) => JsonDocument.Parse(w.Requests.Last().Body).RootElement.GetProperty("model").GetString()!;

    [Fact]
    public async Task AModel_IsServedOnlyByItsOwnPool()
    {
        using var http = TestGateway.Client(_gw);
        for (int i = 0; i < 6; i++)
        {
            (await http.PostAsync("/v1/chat/completions", Chat("qwen-7b"))).EnsureSuccessStatusCode();
        }

        Assert.Equal(6, _qwen.InferenceCount);
        Assert.Equal(0, _llama.InferenceCount + _canary.InferenceCount);
    }

    [Fact]
    public async Task AGlobalAlias_ReachesItsPool_WithTheServedNameInTheBody()
    {
        using var http = TestGateway.Client(_gw);
        (await http.PostAsync("/v1/chat/completions", Chat("claude-sonnet-4-5"))).EnsureSuccessStatusCode();
        Assert.Equal(1, _qwen.InferenceCount);
        Assert.Equal("qwen-7b", BodyModel(_qwen));
    }

    [Fact]
    public async Task AKeysOwnAlias_WinsOverTheGlobalOne_AndTheAllowListAdmitsItsTarget()
    {
        using var http = TestGateway.Client(_gw, LimitedKey);
        (await http.PostAsync("/v1/chat/completions", Chat("claude-sonnet-4-5"))).EnsureSuccessStatusCode();
        Assert.Equal(1, _llama.InferenceCount);
        Assert.Equal("llama3-8b", BodyModel(_llama));
        Assert.Equal(0, _qwen.InferenceCount);

        var denied = await http.PostAsync("/v1/chat/completions", Chat("qwen-7b"));
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("model_not_allowed", await denied.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ASplit_KeepsEachSessionOnOneSide_AndUsesBothSides()
    {
        using var http = TestGateway.Client(_gw);
        for (int session = 0; session < 16; session++)
        {
            int llamaBefore = _llama.InferenceCount, canaryBefore = _canary.InferenceCount;
            for (int turn = 0; turn < 3; turn++)
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Chat("coder") };
                req.Headers.Add("x-session-id", "session-" + session);
                (await http.SendAsync(req)).EnsureSuccessStatusCode();
            }

            int onLlama = _llama.InferenceCount - llamaBefore, onCanary = _canary.InferenceCount - canaryBefore;
            Assert.True(onLlama == 3 || onCanary == 3, $"session {session} was split: {onLlama} / {onCanary}");
        }

        Assert.InRange(_canary.InferenceCount, 3, 45); // both sides got sessions (all 16 on one side: p = 2^-15)
        Assert.InRange(_llama.InferenceCount, 3, 45);
        Assert.All(_canary.Requests, r => Assert.Contains("\"model\":\"llama3-8b-canary\"", r.Body, StringComparison.Ordinal));
        Assert.Equal(0, _qwen.InferenceCount);
    }

    [Fact]
    public async Task AnUnknownModel_Is404ModelNotFound_InEachApisShape()
    {
        using var http = TestGateway.Client(_gw);
        var openAi = await http.PostAsync("/v1/chat/completions", Chat("gpt-9"));
        Assert.Equal(HttpStatusCode.NotFound, openAi.StatusCode);
        var e = JsonDocument.Parse(await openAi.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("model_not_found", e.GetProperty("code").GetString());

        var aliasToNothing = await http.PostAsync("/v1/chat/completions", Chat("gpt-5-codex"));
        Assert.Equal(HttpStatusCode.NotFound, aliasToNothing.StatusCode);

        var anthropic = await http.PostAsync("/v1/messages", TestGateway.Json("""{"model":"claude-opus-9","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.NotFound, anthropic.StatusCode);
        var a = JsonDocument.Parse(await anthropic.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("error", a.GetProperty("type").GetString());
        Assert.Equal("not_found_error", a.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(0, _llama.InferenceCount + _canary.InferenceCount + _qwen.InferenceCount);
    }

    [Fact]
    public async Task AnAliasThroughTheAnthropicApi_ReachesItsPool()
    {
        using var http = TestGateway.Client(_gw);
        var r = await http.PostAsync("/v1/messages", TestGateway.Json("""{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal(1, _qwen.InferenceCount);
        Assert.Equal("qwen-7b", BodyModel(_qwen));
    }

    [Fact]
    public async Task AnUnknownV1Path_NamingAModel_IsPassedThroughToThatModelsPool()
    {
        using var http = TestGateway.Client(_gw);
        var r = await http.PostAsync("/v1/rerank?top_n=1", TestGateway.Json("""{"query":"q","documents":["a","b"],"model":"claude-sonnet-4-5"}"""));
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("qwen-7b", JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("served_by").GetString());
        var seen = Assert.Single(_qwen.Requests);
        Assert.Equal("/v1/rerank", seen.Path);
        Assert.Equal("qwen-7b", JsonDocument.Parse(seen.Body).RootElement.GetProperty("model").GetString()); // the alias resolved
        Assert.False(seen.Headers.ContainsKey("authorization"), "the client's key never reaches a worker");
        Assert.True(seen.Headers.ContainsKey("x-cache-salt"));
        Assert.Empty(_llama.Requests);
    }

    [Fact]
    public async Task AnUnknownV1Path_WithoutAServedModel_Is404()
    {
        using var http = TestGateway.Client(_gw);
        async Task<string> Code(HttpResponseMessage r)
        {
            Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
            return JsonDocument.Parse(await r.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString()!;
        }

        Assert.Equal("model_not_found", await Code(await http.PostAsync("/v1/rerank", TestGateway.Json("""{"model":"gpt-9","query":"q"}"""))));
        Assert.Equal("unknown_url", await Code(await http.PostAsync("/v1/rerank", TestGateway.Json("""{"query":"q"}"""))));
        Assert.Equal("unknown_url", await Code(await http.PostAsync("/v1/rerank", TestGateway.Json("not json"))));
        Assert.Equal("unknown_url", await Code(await http.GetAsync("/v1/rerank")));
        using var limited = TestGateway.Client(_gw, LimitedKey);
        Assert.Equal(HttpStatusCode.Forbidden, (await limited.PostAsync("/v1/rerank", TestGateway.Json("""{"model":"qwen-7b"}"""))).StatusCode);
        using var anonymous = TestGateway.Client(_gw, key: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.PostAsync("/v1/rerank", TestGateway.Json("""{"model":"qwen-7b"}"""))).StatusCode);
        Assert.Empty(_qwen.Requests);
    }

    [Fact]
    public async Task Models_ListsWhatEachKeyMaySend()
    {
        static async Task<string[]> Ids(HttpClient c) =>
            JsonDocument.Parse(await c.GetStringAsync("/v1/models")).RootElement.GetProperty("data").EnumerateArray().Select(m => m.GetProperty("id").GetString()!).ToArray();

        using var demo = TestGateway.Client(_gw);
        Assert.Equal(["claude-sonnet-4-5", "coder", "llama3-8b", "llama3-8b-canary", "qwen-7b"], await Ids(demo));
        using var limited = TestGateway.Client(_gw, LimitedKey);
        Assert.Equal(["claude-sonnet-4-5", "llama3-8b"], await Ids(limited));
        Assert.Equal(HttpStatusCode.OK, (await limited.GetAsync("/v1/models/claude-sonnet-4-5")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await limited.GetAsync("/v1/models/qwen-7b")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await demo.GetAsync("/v1/models/gpt-5-codex")).StatusCode);
    }
}
