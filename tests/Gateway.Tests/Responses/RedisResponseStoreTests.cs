using System.Net;
using System.Text.Json;
using Gateway.Responses;
using Gateway.Tests.Infrastructure;
using static Gateway.Tests.Responses.ResponsesApi;
using Gateway.Tests.State;
using Microsoft.Extensions.DependencyInjection;
using StackExchange.Redis;

namespace Gateway.Tests.Responses;

/// <summary>
/// Stored responses in a real redis-server shared by two gateways: a chain started on one replica continues, reads and
/// deletes on the other; entries carry the TTL; another tenant sees nothing; Redis away is a 503, not "not found".
/// </summary>
public sealed class RedisResponseStoreTests : IAsyncLifetime
{
    private const string OtherKey = "sk-other-tenant-2222";
    private RedisServer _redis = null!;
    private FakeWorker _w = null!;
    private Gateway.Hosting.GatewayHost _gw1 = null!;
    private Gateway.Hosting.GatewayHost _gw2 = null!;
    private string _prefix = "";

    public async Task InitializeAsync()
    {
        _redis = await RedisServer.StartAsync();
        _w = await FakeWorker.StartAsync();
        _prefix = "gwr:" + Guid.NewGuid().ToString("N")[..8] + ":";
        var settings = OtherTenant(OtherKey);
        settings["Gateway:State:Redis"] = _redis.Spec;
        settings["Gateway:State:Prefix"] = _prefix;
        settings["Gateway:Responses:Ttl"] = "00:10:00";
        _gw1 = await TestGateway.StartAsync([_w.Url], settings);
        _gw2 = await TestGateway.StartAsync([_w.Url], settings);
    }

    public async Task DisposeAsync()
    {
        await _gw1.DisposeAsync();
        await _gw2.DisposeAsync();
        await _w.DisposeAsync();
        await _redis.DisposeAsync();
    }

    [Fact]
    public async Task AChainStartedOnOneReplica_ContinuesReadsAndDeletesOnTheOther()
    {
        Assert.IsType<RedisResponseStore>(_gw1.Services.GetRequiredService<IResponseStore>());
        using var c1 = TestGateway.Client(_gw1);
        using var c2 = TestGateway.Client(_gw2);
        var first = await PostAsync(c1, """{"model":"llama3-8b","input":"look it up","tools":[{"type":"function","name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}]}""");
        string id1 = first.GetProperty("id").GetString()!;
        string callId = first.GetProperty("output")[0].GetProperty("call_id").GetString()!;

        var second = await PostAsync(c2, $$$"""{"model":"llama3-8b","previous_response_id":"{{{id1}}}","input":[{"type":"function_call_output","call_id":"{{{callId}}}","output":"found"}]}""");
        Assert.Equal(id1, second.GetProperty("previous_response_id").GetString());
        var requests = _w.Requests.ToArray();
        var chat = JsonDocument.Parse(requests[1].Body).RootElement.GetProperty("messages");
        Assert.Equal(["user", "assistant", "tool"], chat.EnumerateArray().Select(m => m.GetProperty("role").GetString()));
        Assert.Equal(callId, chat[1].GetProperty("tool_calls")[0].GetProperty("id").GetString());
        Assert.Equal(requests[0].Headers["x-session-id"], requests[1].Headers["x-session-id"]); // one session across replicas

        var got = await c2.GetAsync($"/v1/responses/{id1}");
        Assert.Equal(HttpStatusCode.OK, got.StatusCode);
        Assert.Equal(id1, JsonDocument.Parse(await got.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.OK, (await c2.DeleteAsync($"/v1/responses/{id1}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await c1.GetAsync($"/v1/responses/{id1}")).StatusCode);
    }

    [Fact]
    public async Task AStreamedResponse_IsStoredWithTheTtl()
    {
        using var c = TestGateway.Client(_gw1);
        var resp = await c.PostAsync("/v1/responses", TestGateway.Json("""{"model":"llama3-8b","input":"stream me","stream":true}"""));
        string sse = await resp.Content.ReadAsStringAsync();
        string id = System.Text.RegularExpressions.Regex.Match(sse, "\"id\":\"(resp_[^\"]+)\"").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(id), sse);

        await using var conn = await _redis.ConnectAsync();
        var server = conn.Multiplexer.GetServer(conn.Multiplexer.GetEndPoints()[0]);
        var key = Assert.Single(server.Keys(pattern: _prefix + "resp:*"));
        Assert.EndsWith(":" + id, (string)key!, StringComparison.Ordinal);
        var ttl = await conn.Database.KeyTimeToLiveAsync(key);
        Assert.NotNull(ttl);
        Assert.InRange(ttl!.Value, TimeSpan.FromMinutes(9), TimeSpan.FromMinutes(10));
        Assert.Equal(HttpStatusCode.OK, (await TestGateway.Client(_gw2).GetAsync($"/v1/responses/{id}")).StatusCode);
    }

    [Fact]
    public async Task AnotherTenant_CanNeitherReadNorChainNorDelete_OnAnyReplica()
    {
        using var a = TestGateway.Client(_gw1);
        using var b = TestGateway.Client(_gw2, OtherKey);
        using var a2 = TestGateway.Client(_gw2);
        await AssertAnotherTenantSeesNothingAsync(a, b, a2);
    }

    [Fact]
    public async Task RedisAway_Is503_NotNotFound()
    {
        using var c = TestGateway.Client(_gw1);
        string id = (await PostAsync(c, """{"model":"llama3-8b","input":"x"}""")).GetProperty("id").GetString()!;
        await _redis.DisposeAsync(); // redis-server killed
        await RedisServer.WaitUntilAsync(() => !_gw1.Services.GetRequiredService<Gateway.State.RedisConnection>().IsConnected, "the gateway saw Redis go");
        var got = await c.GetAsync($"/v1/responses/{id}");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, got.StatusCode);
        Assert.Contains("response_store_unavailable", await got.Content.ReadAsStringAsync());
        var chained = await c.PostAsync("/v1/responses", TestGateway.Json($$"""{"model":"llama3-8b","previous_response_id":"{{id}}","input":"more"}"""));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, chained.StatusCode);
    }
}
