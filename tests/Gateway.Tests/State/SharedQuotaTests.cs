using System.Net;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.State;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Worker;

namespace Gateway.Tests.State;

/// <summary>
/// Quotas hold across gateway replicas: two real gateways on 127.0.0.1 share a real redis-server; a key's
/// tokens-per-minute, requests-per-minute and concurrent-request limits are enforced cluster-wide (429 + Retry-After, OpenAI shape),
/// while the same two gateways without Redis each admit up to the limit on their own.
/// </summary>
public sealed class SharedQuotaTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Key = "sk-quota-tenant";

    private static Dictionary<string, string?> Settings(RedisServer? redis, string prefix, Dictionary<string, string?> quota)
    {
        var s = new Dictionary<string, string?>
        {
            ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, Key),
            ["Gateway:Auth:Keys:0:Tenant"] = "org/team/key",
            ["Gateway:Scheduling:Tenants:0:Name"] = "org",
            ["Gateway:Scheduling:Tenants:0:Children:0:Name"] = "team",
            ["Gateway:Scheduling:Tenants:0:Children:0:Children:0:Name"] = "key",
            ["Gateway:Scheduling:TickInterval"] = "00:00:00.050",
        };
        foreach (var (k, v) in quota)
        {
            s["Gateway:Scheduling:Tenants:0:Children:0:Children:0:" + k] = v;
        }

        if (redis is not null)
        {
            s["Gateway:State:Redis"] = "127.0.0.1:" + redis.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            s["Gateway:State:Prefix"] = prefix;
        }

        return s;
    }

    private static StringContent Body(int maxTokens) =>
        TestGateway.Json(JsonSerializer.Serialize(new { model = "llama3-8b", max_tokens = maxTokens, messages = new[] { new { role = "user", content = "quota across replicas" } } }));

    private static async Task AssertOpenAi429(HttpResponseMessage r, string code)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, r.StatusCode);
        Assert.NotNull(r.Headers.RetryAfter?.Delta);
        Assert.True(r.Headers.RetryAfter!.Delta >= TimeSpan.FromSeconds(1));
        using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        Assert.Equal(code, doc.RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task TokensPerMinute_HoldsAcrossTwoGateways_SharedRedis_NotWithLocalState()
    {
        // Each request reserves prompt + max_tokens (60 + a prompt of 7..40 tokens); 200 per minute fit two, not three.
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.02 });
        string url = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        var quota = new Dictionary<string, string?> { ["TokensPerMinute"] = "200" };
        foreach (var shared in new[] { true, false })
        {
            var settings = Settings(shared ? redis : null, "gwq:" + Guid.NewGuid().ToString("N")[..8] + ":", quota);
            await using var gw1 = await TestGateway.StartAsync([url], settings);
            await using var gw2 = await TestGateway.StartAsync([url], settings);
            Assert.Equal(shared, gw1.Services.GetRequiredService<GatewayScheduling>().SharedQuota is not null);
            using var h1 = TestGateway.Client(gw1, Key);
            using var h2 = TestGateway.Client(gw2, Key);
            var r1 = await h1.PostAsync("v1/chat/completions", Body(60));
            var r2 = await h2.PostAsync("v1/chat/completions", Body(60));
            Assert.Equal(HttpStatusCode.OK, r1.StatusCode);
            Assert.Equal(HttpStatusCode.OK, r2.StatusCode);
            var r3 = await h1.PostAsync("v1/chat/completions", Body(60));
            output.WriteLine($"shared={shared}: third request {(int)r3.StatusCode}, Retry-After {r3.Headers.RetryAfter?.Delta}");
            if (shared)
            {
                await AssertOpenAi429(r3, "rate_limit_exceeded"); // gw1 saw one request; the cluster saw two
                var r4 = await h2.PostAsync("v1/chat/completions", Body(60));
                await AssertOpenAi429(r4, "rate_limit_exceeded");
            }
            else
            {
                Assert.Equal(HttpStatusCode.OK, r3.StatusCode); // each replica alone counts only its own traffic
            }
        }
    }

    [Fact]
    public async Task RequestsPerMinute_HoldsAcrossTwoGateways_SharedRedis_NotWithLocalState()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.02 });
        string url = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        foreach (var shared in new[] { true, false })
        {
            var settings = Settings(shared ? redis : null, "gwq:" + Guid.NewGuid().ToString("N")[..8] + ":", new() { ["RequestsPerMinute"] = "3" });
            await using var gw1 = await TestGateway.StartAsync([url], settings);
            await using var gw2 = await TestGateway.StartAsync([url], settings);
            using var h1 = TestGateway.Client(gw1, Key);
            using var h2 = TestGateway.Client(gw2, Key);
            var statuses = new List<HttpStatusCode>();
            HttpResponseMessage? refused = null;
            for (int i = 0; i < 6; i++)
            {
                var r = await (i % 2 == 0 ? h1 : h2).PostAsync("v1/chat/completions", Body(2));
                statuses.Add(r.StatusCode);
                refused ??= r.StatusCode == HttpStatusCode.TooManyRequests ? r : null;
            }

            output.WriteLine($"shared={shared}: {string.Join(' ', statuses.Select(s => (int)s))}");
            if (shared)
            {
                // three requests a minute for the key across both replicas, the others refused
                Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK], statuses.Take(3));
                Assert.All(statuses.Skip(3), s => Assert.Equal(HttpStatusCode.TooManyRequests, s));
                await AssertOpenAi429(refused!, "rate_limit_exceeded");
            }
            else
            {
                Assert.All(statuses, s => Assert.Equal(HttpStatusCode.OK, s)); // three on each replica
            }
        }
    }

    [Fact]
    public async Task ConcurrentRequests_HoldAcrossTwoGateways_SlotFreedOnCompletion()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.1 });
        string url = worker.BaseAddress.GetLeftPart(UriPartial.Authority);
        var settings = Settings(redis, "gwq:" + Guid.NewGuid().ToString("N")[..8] + ":", new() { ["MaxConcurrent"] = "1" });
        await using var gw1 = await TestGateway.StartAsync([url], settings);
        await using var gw2 = await TestGateway.StartAsync([url], settings);
        var s1 = gw1.Services.GetRequiredService<GatewayScheduling>();
        using var h1 = TestGateway.Client(gw1, Key);
        using var h2 = TestGateway.Client(gw2, Key);

        var busy = h1.PostAsync("v1/chat/completions", Body(600));
        await RedisServer.WaitUntilAsync(() => s1.Dispatcher.InFlight == 1, "gw1 holds the key's one slot");
        var refused = await h2.PostAsync("v1/chat/completions", Body(2));
        await AssertOpenAi429(refused, "rate_limit_exceeded");
        Assert.False(busy.IsCompleted, "the long request finished before the check");
        Assert.Equal(HttpStatusCode.OK, (await busy).StatusCode);

        // Settlement is asynchronous (one Redis script after completion): the slot comes back within a bounded wait.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        HttpResponseMessage again;
        while ((again = await h2.PostAsync("v1/chat/completions", Body(2))).StatusCode == HttpStatusCode.TooManyRequests)
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "the slot was not released");
            await Task.Delay(20);
        }

        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }

    [Theory]
    [InlineData(QuotaFailMode.Open)]
    [InlineData(QuotaFailMode.Closed)]
    public async Task RedisAway_FailModeDecides(QuotaFailMode mode)
    {
        var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.02 });
        var settings = Settings(redis, "gwq:" + Guid.NewGuid().ToString("N")[..8] + ":", new() { ["MaxConcurrent"] = "4" });
        settings["Gateway:State:QuotaFailMode"] = mode.ToString();
        await using var gw = await TestGateway.StartAsync([worker.BaseAddress.GetLeftPart(UriPartial.Authority)], settings);
        using var http = TestGateway.Client(gw, Key);
        Assert.Equal(HttpStatusCode.OK, (await http.PostAsync("v1/chat/completions", Body(2))).StatusCode);
        await redis.DisposeAsync(); // redis-server killed
        var r = await http.PostAsync("v1/chat/completions", Body(2));
        output.WriteLine($"{mode}: {(int)r.StatusCode}");
        if (mode == QuotaFailMode.Open)
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        else
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
            Assert.NotNull(r.Headers.RetryAfter);
            using var doc = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
            Assert.Equal("quota_store_unavailable", doc.RootElement.GetProperty("error").GetProperty("code").GetString());
        }
    }
}
