using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using Gateway.Auth;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.State;
using Worker;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// The series an operator alerts on are fed by the running system, not only declared: inter-token latency from a
/// real stream, retention pins from the workers' state, Redis command timings and health from a real redis-server.
/// </summary>
public sealed partial class FedMetricsTests
{
    [Fact]
    public async Task Stream_ThroughGateway_RecordsOneInterTokenGapPerTokenAfterTheFirst()
    {
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0.05 });
        await using var gw = await TestGateway.StartAsync([worker.BaseAddress.ToString()]);
        using var http = TestGateway.Client(gw);
        using var resp = await http.SendAsync(Sse.ChatStream(
            """{"model":"llama3-8b","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"count"}]}"""),
            HttpCompletionOption.ResponseHeadersRead);
        var events = await Sse.ReadAllAsync(resp);
        int dataEvents = events.Count(e => e.Data != "[DONE]");

        string text = await ScrapeAsync(http);
        double gaps = Sum(text, "gateway_inter_token_latency_seconds_count");
        Assert.Equal(dataEvents - 1, gaps); // every chunk after the first is one gap
        Assert.True(Sum(text, "gateway_inter_token_latency_seconds_sum") > 0);
    }

    [Fact]
    public async Task WorkerPins_ReportedInItsState_ShowUpAsActivePins()
    {
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0 });
        await using var gw = await TestGateway.StartAsync([worker.BaseAddress.ToString()]);
        using var http = TestGateway.Client(gw);
        var ok = await http.PostAsync("v1/chat/completions", TestGateway.Json(
            """{"model":"llama3-8b","max_tokens":2,"messages":[{"role":"user","content":"a prompt long enough to fill a couple of KV blocks with tokens, more tokens, and more"}]}"""));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        string first = await ScrapeAsync(http);
        Assert.Equal(0, Sum(first, "gateway_retention_pins_active"));
        Assert.True(Sum(first, "gateway_process_gc_heap_bytes") > 0); // the managed heap a soak run watches
        Assert.True(Sum(first, "gateway_process_gc_committed_bytes") >= Sum(first, "gateway_process_gc_heap_bytes")); // and what the GC holds for it

        var hashes = worker.ReadEngine(e => e.GetState()).KvBlocksCached;
        Assert.True(hashes > 0);
        using (var direct = new HttpClient { BaseAddress = worker.BaseAddress })
        {
            var snapshot = System.Text.Json.JsonDocument.Parse(await direct.GetStringAsync("worker/kv/snapshot"));
            string list = string.Join(',', snapshot.RootElement.GetProperty("block_hashes").EnumerateArray().Select(h => h.GetRawText()));
            var pin = await direct.PostAsync("worker/kv/retain", TestGateway.Json($$"""{"block_hashes":[{{list}}],"ttl_ms":60000}"""));
            Assert.Equal(HttpStatusCode.OK, pin.StatusCode);
        }

        double active = 0;
        for (int i = 0; i < 200 && active == 0; i++)
        {
            await Task.Delay(25);
            active = Sum(await ScrapeAsync(http), "gateway_retention_pins_active");
        }

        Assert.Equal(1, active);
    }

    [Fact]
    public async Task SharedRedis_CommandsTimedAndHealthUp_ThenDownWhenRedisGoesAway()
    {
        var redis = await RedisServer.StartAsync();
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 0 });
        const string key = "sk-redis-metrics";
        await using var gw = await TestGateway.StartAsync([worker.BaseAddress.ToString()], new Dictionary<string, string?>
        {
            ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, key),
            ["Gateway:Auth:Keys:0:Tenant"] = "org/team/key",
            ["Gateway:State:Redis"] = "127.0.0.1:" + redis.Port.ToString(CultureInfo.InvariantCulture),
            ["Gateway:State:Prefix"] = "gwmetrics:" + Guid.NewGuid().ToString("N")[..8] + ":",
            ["Gateway:Scheduling:TickInterval"] = "00:00:00.050",
        });
        using var http = TestGateway.Client(gw, key);
        var ok = await http.PostAsync("v1/chat/completions", TestGateway.Json("""{"model":"llama3-8b","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}"""));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);

        string text = "";
        for (int i = 0; i < 200; i++)
        {
            text = await ScrapeAsync(http);
            if (Sum(text, "gateway_redis_command_duration_seconds_count") > 0 && Sum(text, "gateway_redis_up") == 1) break;
            await Task.Delay(25);
        }

        Assert.True(Sum(text, "gateway_redis_command_duration_seconds_count") > 0, "no Redis command was timed");
        Assert.Equal(1, Sum(text, "gateway_redis_up"));
        Assert.DoesNotContain("gwmetrics:", text, StringComparison.Ordinal); // keys never become labels

        await redis.DisposeAsync();
        double up = 1;
        for (int i = 0; i < 200 && up != 0; i++)
        {
            await Task.Delay(25);
            up = Sum(await ScrapeAsync(http), "gateway_redis_up");
        }

        Assert.Equal(0, up);
    }

    private static async Task<string> ScrapeAsync(HttpClient http)
    {
        using var r = await http.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        return await r.Content.ReadAsStringAsync();
    }

    /// <summary>Sum of every sample of <paramref name="name"/> (any labels).</summary>
    private static double Sum(string exposition, string name)
    {
        double sum = 0;
        foreach (Match m in Sample().Matches(exposition))
        {
            if (m.Groups["name"].Value == name)
            {
                sum += double.Parse(m.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (?<value>\S+)", RegexOptions.Multiline)]
    private static partial Regex Sample();
}
