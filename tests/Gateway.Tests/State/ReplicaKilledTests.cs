using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Fleet;
using Gateway.Scheduling;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Gateway.Tests.State;

/// <summary>
/// A gateway replica SIGKILLed under load: two gateways over one real redis-server share a worker's slots; one is a
/// process of its own (<see cref="ServerProcess"/>) killed while its streams hold slots. Its clients get a connection
/// error, never a hang; the survivor keeps answering, and takes the dead replica's slots back once its lease lapses.
/// </summary>
public sealed class ReplicaKilledTests(ITestOutputHelper output)
{
    private const string Key = "sk-replica-killed";
    private const int Slots = 4;
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(2);

    private static Dictionary<string, string?> Settings(RedisServer redis) => new()
    {
        ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, Key),
        ["Gateway:Auth:Keys:0:Tenant"] = "org/team/key",
        ["Gateway:Scheduling:MaxInFlightPerWorker"] = Slots.ToString(CultureInfo.InvariantCulture),
        ["Gateway:Scheduling:TickInterval"] = "00:00:00.050",
        ["Gateway:Scheduling:DefaultQueueTimeout"] = "00:01:00",
        ["Gateway:State:Redis"] = redis.Spec,
        ["Gateway:State:Prefix"] = "gwkill:" + Guid.NewGuid().ToString("N")[..8] + ":",
        ["Gateway:State:SlotLeaseTtl"] = "00:00:02",
    };

    /// <summary>Sends one streamed request and reads it to the end: "200", another status, or "connection error".</summary>
    private static async Task<string> StreamAsync(HttpClient client, int i)
    {
        var body = JsonSerializer.Serialize(new { model = "llama3-8b", stream = true, max_tokens = 8, messages = new[] { new { role = "user", content = "request " + i } } });
        try
        {
            using var r = await client.PostAsync("v1/chat/completions", TestGateway.Json(body));
            string text = await r.Content.ReadAsStringAsync();
            return r.StatusCode == HttpStatusCode.OK && text.Contains("[DONE]", StringComparison.Ordinal) ? "200" : ((int)r.StatusCode).ToString(CultureInfo.InvariantCulture);
        }
        catch (HttpRequestException)
        {
            return "connection error";
        }
        catch (IOException)
        {
            return "connection error";
        }
    }

    [Fact]
    public async Task ReplicaKilledUnderLoad_ItsClientsGetAConnectionError_TheSurvivorServesAndTakesBackItsSlotsAfterTheLease()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await FakeWorker.StartAsync();
        worker.StreamChunks = 40;
        worker.ChunkDelay = TimeSpan.FromMilliseconds(50); // 2 s streams
        var settings = Settings(redis);
        var processSettings = new Dictionary<string, string?>(settings)
        {
            ["Gateway:Workers:Mode"] = "Static",
            ["Gateway:Workers:Urls:0"] = worker.Url,
            ["Gateway:Auth:ServerSecret"] = TestGateway.Secret,
            ["Gateway:Health:Interval"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        await using var doomed = await ServerProcess.StartGatewayAsync(processSettings);
        await using var survivor = await TestGateway.StartAsync([worker.Url], settings);
        var slots = survivor.Services.GetRequiredService<GatewayScheduling>().Slots!;
        string workerId = survivor.Services.GetRequiredService<WorkerRegistry>().All[0].Info.Id;
        await RedisServer.WaitUntilAsync(() => slots.IsShared && slots.Replicas == 2, "both replicas share the worker's slots", 30_000);

        using var doomedClient = new HttpClient { BaseAddress = doomed.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
        doomedClient.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Key);
        using var survivorClient = TestGateway.Client(survivor, Key);
        survivorClient.Timeout = TimeSpan.FromSeconds(60);

        var onDoomed = Enumerable.Range(0, Slots).Select(i => StreamAsync(doomedClient, i)).ToList();
        await RedisServer.WaitUntilAsync(() => worker.Running >= 2, "the doomed replica's streams are running");
        var onSurvivor = Enumerable.Range(100, 8).Select(i => StreamAsync(survivorClient, i)).ToList();
        await Task.Delay(200);
        doomed.Kill();
        var sw = Stopwatch.StartNew();

        var doomedOutcomes = await Task.WhenAll(onDoomed).WaitAsync(Gateway.Tests.Proxy.FaultKit.NoHang);
        output.WriteLine($"clients of the killed replica: {string.Join(", ", doomedOutcomes)}");
        Assert.All(doomedOutcomes, o => Assert.True(o is "200" or "connection error", o));
        Assert.Contains("connection error", doomedOutcomes);

        await RedisServer.WaitUntilAsync(() => slots.Replicas == 1 && slots.LimitOf(workerId, Slots) == Slots, "the survivor holds every slot again", 15_000);
        var reclaimed = sw.Elapsed;
        output.WriteLine($"the survivor took back every slot {reclaimed.TotalMilliseconds:F0} ms after the kill (lease {Lease.TotalSeconds} s)");
        Assert.True(reclaimed <= 5 * Lease, $"reclaimed after {reclaimed}"); // a lease and a few sync ticks; generous for a loaded machine

        var survivorOutcomes = await Task.WhenAll(onSurvivor).WaitAsync(Gateway.Tests.Proxy.FaultKit.NoHang);
        Assert.All(survivorOutcomes, o => Assert.Equal("200", o)); // every request on the survivor answered

        // The survivor alone now runs as many streams at once as the worker has slots.
        var peak = 0;
        var alone = Enumerable.Range(200, 2 * Slots).Select(i => StreamAsync(survivorClient, i)).ToList();
        while (!Task.WhenAll(alone).IsCompleted)
        {
            peak = Math.Max(peak, worker.Running);
            await Task.Delay(20);
        }

        Assert.All(await Task.WhenAll(alone), o => Assert.Equal("200", o));
        output.WriteLine($"survivor alone: {peak} streams at once on the worker");
        Assert.Equal(Slots, peak);
    }
}
