using System.Net;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.State;

/// <summary>Gateway:State:Redis wires the fair queue's service counters to a real redis-server shared by two gateways.</summary>
public sealed class GatewayRedisStateTests
{
    private const string Key = "sk-redis-tenant";

    [Fact]
    public async Task TwoGateways_SharedRedis_ServiceOnOneReachesTheOthersScheduler()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.02 });
        var settings = new Dictionary<string, string?>
        {
            ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, Key),
            ["Gateway:Auth:Keys:0:Tenant"] = "org/team/key",
            ["Gateway:State:Redis"] = "127.0.0.1:" + redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Gateway:State:Prefix"] = "gwtest:" + Guid.NewGuid().ToString("N")[..8] + ":",
            ["Gateway:Scheduling:TickInterval"] = "00:00:00.050",
        };
        string url = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        await using var gw1 = await TestGateway.StartAsync([url], settings);
        await using var gw2 = await TestGateway.StartAsync([url], settings);
        var s1 = gw1.Services.GetRequiredService<GatewayScheduling>();
        var s2 = gw2.Services.GetRequiredService<GatewayScheduling>();
        Assert.Equal("redis", s1.Store.Name);

        using var http = TestGateway.Client(gw1, Key);
        for (int i = 0; i < 3; i++)
        {
            var r = await http.PostAsync("v1/chat/completions", TestGateway.Json("""{"model":"llama3-8b","max_tokens":4,"messages":[{"role":"user","content":"shared fairness state"}]}"""));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }

        await RedisServer.WaitUntilAsync(() => s1.Store.IsShared && s2.Store.IsShared, "both stores shared");
        // gw2 served nothing itself; the service gw1 delivered arrives through Redis and is charged to gw2's scheduler.
        await RedisServer.WaitUntilAsync(() => s2.Sync!.RemoteServiceOf("org/team/key") > 0, "remote service applied on gw2");
        Assert.Equal(0, s1.Sync!.RemoteServiceOf("org/team/key"));
    }
}
