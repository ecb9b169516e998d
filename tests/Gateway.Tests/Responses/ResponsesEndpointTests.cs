using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using static Gateway.Tests.Responses.ResponsesApi;

namespace Gateway.Tests.Responses;

/// <summary>POST/GET/DELETE /v1/responses on a live gateway in front of a fake worker.</summary>
public sealed class ResponsesEndpointTests : IAsyncLifetime
{
    private const string OtherKey = "sk-other-tenant-1111";
    private FakeWorker _w = null!;
    private Gateway.Hosting.GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _w = await FakeWorker.StartAsync();
        _gw = await TestGateway.StartAsync([_w.Url], OtherTenant(OtherKey));
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _w.DisposeAsync();
    }

    [Fact]
    public async Task Create_TranslatesInstructionsAndInput_AndAnswersAResponseObject()
    {
        using var c = TestGateway.Client(_gw);
        var r = await PostAsync(c, """{"model":"llama3-8b","instructions":"be brief","input":"hello"}""");
        Assert.Equal("response", r.GetProperty("object").GetString());
        Assert.StartsWith("resp_", r.GetProperty("id").GetString(), StringComparison.Ordinal);
        Assert.Equal("completed", r.GetProperty("status").GetString());
        var item = r.GetProperty("output")[0];
        Assert.Equal("message", item.GetProperty("type").GetString());
        Assert.Equal("Hello from fake", item.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(10, r.GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Assert.Equal(3, r.GetProperty("usage").GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32());
        var (path, _, body) = Assert.Single(_w.Requests);
        Assert.Equal("/v1/chat/completions", path);
        var chat = JsonDocument.Parse(body).RootElement;
        Assert.Equal("system", chat.GetProperty("messages")[0].GetProperty("role").GetString());
        Assert.Equal("hello", chat.GetProperty("messages")[1].GetProperty("content").GetString());
    }

    [Fact]
    public async Task Chain_CarriesTheConversation_IsOneSession_AndGetAndDeleteWork()
    {
        using var c = TestGateway.Client(_gw);
        var first = await PostAsync(c, """{"model":"llama3-8b","input":"look it up","tools":[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}]}""");
        var call = first.GetProperty("output")[0];
        Assert.Equal("function_call", call.GetProperty("type").GetString());
        Assert.Equal("lookup", call.GetProperty("name").GetString());
        string callId = call.GetProperty("call_id").GetString()!;
        string id1 = first.GetProperty("id").GetString()!;

        var second = await PostAsync(c, $$$"""{"model":"llama3-8b","previous_response_id":"{{{id1}}}","input":[{"type":"function_call_output","call_id":"{{{callId}}}","output":"found"}]}""");
        Assert.Equal(id1, second.GetProperty("previous_response_id").GetString());
        var requests = _w.Requests.ToArray();
        var chat = JsonDocument.Parse(requests[1].Body).RootElement.GetProperty("messages");
        Assert.Equal(["user", "assistant", "tool"], chat.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(callId, chat[1].GetProperty("tool_calls")[0].GetProperty("id").GetString());
        Assert.Equal("found", chat[2].GetProperty("content").GetString());
        Assert.Equal(requests[0].Headers["x-session-id"], requests[1].Headers["x-session-id"]);

        var got = await c.GetAsync($"/v1/responses/{id1}");
        Assert.Equal(HttpStatusCode.OK, got.StatusCode);
        Assert.Equal(id1, JsonDocument.Parse(await got.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString());
        var deleted = await c.DeleteAsync($"/v1/responses/{id1}");
        Assert.True(JsonDocument.Parse(await deleted.Content.ReadAsStringAsync()).RootElement.GetProperty("deleted").GetBoolean());
        Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync($"/v1/responses/{id1}")).StatusCode);
    }

    [Fact]
    public async Task AnotherTenant_CanNeitherReadNorChainNorDelete()
    {
        using var a = TestGateway.Client(_gw);
        using var b = TestGateway.Client(_gw, OtherKey);
        await AssertAnotherTenantSeesNothingAsync(a, b, a);
        Assert.Single(_w.Requests);
    }

    [Fact]
    public async Task ACallOfAFunctionFromANamespaceTool_IsAnsweredWithItsNamespace()
    {
        // Codex groups its sub-agent tools in a namespace and dispatches a call by (namespace, name).
        using var c = TestGateway.Client(_gw);
        const string Tools = """[{"type":"namespace","name":"multi_agent_v1","description":"sub-agents","tools":[{"type":"function","name":"spawn_agent","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}]},{"type":"function","name":"exec_command","parameters":{"type":"object"}}]""";
        var r = await PostAsync(c, $$"""{"model":"llama3-8b","input":"delegate","tools":{{Tools}}}""");
        var call = r.GetProperty("output")[0];
        Assert.Equal("spawn_agent", call.GetProperty("name").GetString());
        Assert.Equal("multi_agent_v1", call.GetProperty("namespace").GetString());
        var chatTools = JsonDocument.Parse(_w.Requests.Last().Body).RootElement.GetProperty("tools");
        Assert.Equal(["spawn_agent", "exec_command"], chatTools.EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()));

        var stream = await c.PostAsync("/v1/responses", TestGateway.Json($$"""{"model":"llama3-8b","input":"delegate","stream":true,"tools":{{Tools}}}"""));
        string sse = await stream.Content.ReadAsStringAsync();
        var done = sse.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => JsonDocument.Parse(l[6..]).RootElement)
            .First(e => e.GetProperty("type").GetString() == "response.output_item.done");
        Assert.Equal("multi_agent_v1", done.GetProperty("item").GetProperty("namespace").GetString());
    }

    [Fact]
    public async Task StoreFalse_KeepsNothing()
    {
        using var c = TestGateway.Client(_gw);
        string id = (await PostAsync(c, """{"model":"llama3-8b","input":"x","store":false}""")).GetProperty("id").GetString()!;
        Assert.Equal(HttpStatusCode.NotFound, (await c.GetAsync($"/v1/responses/{id}")).StatusCode);
    }

    [Fact]
    public async Task Stream_SendsTypedEvents_FunctionCallArgumentsThenText_ThenCompleted()
    {
        using var c = TestGateway.Client(_gw);
        var resp = await c.PostAsync("/v1/responses", TestGateway.Json("""{"model":"llama3-8b","stream":true,"input":"go","tools":[{"type":"function","name":"lookup","parameters":{"type":"object"}}]}"""));
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        var events = new List<JsonElement>();
        foreach (var block in (await resp.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n');
            var data = JsonDocument.Parse(lines.Single(l => l.StartsWith("data: ", StringComparison.Ordinal))[6..]).RootElement.Clone();
            Assert.Equal(lines.Single(l => l.StartsWith("event: ", StringComparison.Ordinal))[7..], data.GetProperty("type").GetString());
            events.Add(data);
        }

        var types = events.Select(e => e.GetProperty("type").GetString()).ToList();
        Assert.Equal("response.created", types[0]);
        Assert.Equal("response.completed", types[^1]);
        Assert.Contains("response.function_call_arguments.done", types);
        Assert.Contains("response.output_text.delta", types);
        Assert.True(types.IndexOf("response.function_call_arguments.done") < types.IndexOf("response.output_text.delta"));
        Assert.Equal(Enumerable.Range(0, events.Count), events.Select(e => e.GetProperty("sequence_number").GetInt32()));
        var done = events[^1].GetProperty("response");
        Assert.Equal(2, done.GetProperty("output").GetArrayLength());
        Assert.Equal("tok1 tok2 tok3 tok4 ", done.GetProperty("output")[1].GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(3, done.GetProperty("usage").GetProperty("input_tokens_details").GetProperty("cached_tokens").GetInt32());
    }

    [Fact]
    public async Task NamespacedFunctionTools_AreOffered_HostedToolsAreNot()
    {
        using var c = TestGateway.Client(_gw);
        await PostAsync(c, """{"model":"llama3-8b","input":"x","tools":[{"type":"web_search"},{"type":"namespace","name":"agents","tools":[{"type":"function","name":"spawn","parameters":{"type":"object"}}]}]}""");
        var tools = JsonDocument.Parse(_w.Requests.Single().Body).RootElement.GetProperty("tools");
        Assert.Equal(["spawn"], tools.EnumerateArray().Select(t => t.GetProperty("function").GetProperty("name").GetString()));
    }

    [Fact]
    public async Task CodexTurnMetadataHeader_FeedsTheSession()
    {
        using var c = TestGateway.Client(_gw);
        foreach (var turn in new[] { "t1", "t2" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/responses") { Content = TestGateway.Json("""{"model":"llama3-8b","input":"x"}""") };
            req.Headers.Add("x-codex-turn-metadata", $$"""{"session_id":"codex-1","turn_id":"{{turn}}"}""");
            (await c.SendAsync(req)).EnsureSuccessStatusCode();
        }

        var ids = _w.Requests.Select(r => r.Headers["x-session-id"]).ToArray();
        Assert.Equal(ids[0], ids[1]);
    }

    [Fact]
    public async Task OutputWithoutACall_AsCodexSendsItsAgentState_ReachesTheModelAsANamedUserMessage()
    {
        using var c = TestGateway.Client(_gw);
        await PostAsync(c, """{"model":"llama3-8b","input":[{"type":"message","role":"user","content":"plan"},{"type":"function_call_output","name":"goal_objective","namespace":"agent","output":"index fast"}]}""");
        var messages = JsonDocument.Parse(_w.Requests.Single().Body).RootElement.GetProperty("messages");
        Assert.Equal(["user", "user"], messages.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal("[agent.goal_objective] index fast", messages[1].GetProperty("content").GetString());
    }

    [Theory]
    [InlineData("""{"input":"x"}""", "model")]
    [InlineData("""{"model":"llama3-8b"}""", "input")]
    [InlineData("""{"model":"llama3-8b","input":[{"type":"web_search_call"}]}""", "input[0].type")]
    [InlineData("""{"model":"llama3-8b","input":[{"type":"function_call_output","output":"orphan"}]}""", "input[0].call_id")]
    [InlineData("""{"model":"llama3-8b","input":"x","tools":[{"type":"web_search"},{"type":"function"}]}""", "tools[1].name")]
    public async Task BadRequests_Give400NamingTheParam(string json, string param)
    {
        using var c = TestGateway.Client(_gw);
        var e = await PostAsync(c, json, HttpStatusCode.BadRequest);
        Assert.Equal(param, e.GetProperty("error").GetProperty("param").GetString());
        Assert.Empty(_w.Requests);
    }
}
