using System.Globalization;
using System.Net;
using System.Text.Json;
using Gateway.Auth;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Telemetry;
using Gateway.Tests.Telemetry;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Gateway.Tests.State;

/// <summary>
/// Two real gateways (Kestrel on 127.0.0.1) over one real redis-server, behind a client that alternates between them
/// on every request (a non-sticky balancer): a session's turns reach the same worker whichever replica takes them; the
/// replicas together never run more requests on a worker than its slots, yet one replica alone may use all of them
/// but the idle one's standing slot, which releases the idle replica's first request at once;
/// with Redis killed mid-run, serving continues on each replica's fallback share (<c>gateway_slots_shared</c> 0), and
/// it is shared again when Redis returns.
/// </summary>
public sealed class TwoReplicaSharedStateTests(ITestOutputHelper output)
{
    private const string Key = "sk-two-replica-state";
    private const int Slots = 4;

    private static Dictionary<string, string?> Settings(RedisServer? redis, string prefix) => new()
    {
        ["Gateway:Auth:Keys:0:Hash"] = ApiKeyAuthenticator.HashKey(TestGateway.Secret, Key),
        ["Gateway:Auth:Keys:0:Tenant"] = "org/team/key",
        ["Gateway:Scheduling:MaxInFlightPerWorker"] = Slots.ToString(CultureInfo.InvariantCulture),
        ["Gateway:Scheduling:TickInterval"] = "00:00:00.050",
        ["Gateway:Scheduling:DefaultQueueTimeout"] = "00:01:00",
        ["Gateway:State:Redis"] = redis is null ? "" : redis.Spec,
        ["Gateway:State:Prefix"] = prefix,
        ["Gateway:State:SlotLeaseTtl"] = "00:00:02",
    };

    private static StringContent Body(string content) => TestGateway.Json(JsonSerializer.Serialize(new
    {
        model = "llama3-8b",
        stream = true,
        max_tokens = 8,
        messages = new[] { new { role = "user", content } },
    }));

    /// <summary>Sends <paramref name="total"/> streamed requests from <paramref name="concurrency"/> loops, alternating clients per request.</summary>
    private static async Task<int> AlternateAsync(HttpClient[] clients, int total, int concurrency, CancellationToken ct)
    {
        int next = 0, ok = 0;
        async Task Loop()
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) <= total)
            {
                using var r = await clients[i % clients.Length].PostAsync("v1/chat/completions", Body("alternating request " + i), ct);
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                await r.Content.ReadAsStringAsync(ct);
                Interlocked.Increment(ref ok);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Loop()));
        return ok;
    }

    private static async Task<int> MaxRunningAsync(RedisServer? redis, bool onlyFirst)
    {
        await using var worker = await FakeWorker.StartAsync();
        worker.StreamChunks = 6;
        worker.ChunkDelay = TimeSpan.FromMilliseconds(25);
        var settings = Settings(redis, "gw2s:" + Guid.NewGuid().ToString("N")[..8] + ":");
        await using var gw1 = await TestGateway.StartAsync([worker.Url], settings);
        await using var gw2 = await TestGateway.StartAsync([worker.Url], settings);
        using var c1 = TestGateway.Client(gw1, Key);
        using var c2 = TestGateway.Client(gw2, Key);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        int ok = await AlternateAsync(onlyFirst ? [c1] : [c1, c2], 96, 16, deadline.Token);
        Assert.Equal(96, ok);
        return worker.MaxRunning;
    }

    [Fact]
    public async Task SlotsShared_TwoReplicasNeverExceedTheWorkersSlots_OneReplicaAloneUsesAllButTheIdleOnesStandingSlot_LocalStateOverfills()
    {
        await using var redis = await RedisServer.StartAsync();
        int shared = await MaxRunningAsync(redis, onlyFirst: false);
        int alone = await MaxRunningAsync(redis, onlyFirst: true);
        int local = await MaxRunningAsync(null, onlyFirst: false);
        output.WriteLine($"max concurrent on the worker ({Slots} slots): shared {shared}, one replica alone {alone}, local state {local}");
        Assert.InRange(shared, 1, Slots);
        Assert.Equal(Slots - 1, alone); // the idle replica's share is lent, all but its standing slot
        Assert.True(local > Slots, $"without Redis each replica fills the worker on its own: {local}");
    }

    /// <summary>
    /// Replica 1 floods one worker (long streams) while replica 2 is idle; then one request reaches replica 2. Returns
    /// how many of the flood's requests had finished when that request started on the worker, and the most requests
    /// the worker ran at once.
    /// </summary>
    private static async Task<(int FinishedFirst, int MaxRunning)> IdleReplicaFirstRequestAsync(RedisServer redis, int standing)
    {
        await using var worker = await FakeWorker.StartAsync();
        worker.StreamChunks = 40;
        worker.ChunkDelay = TimeSpan.FromMilliseconds(50); // 2 s a request
        var settings = Settings(redis, "gw2i:" + Guid.NewGuid().ToString("N")[..8] + ":");
        settings["Gateway:State:StandingSlots"] = standing.ToString(CultureInfo.InvariantCulture);
        await using var gw1 = await TestGateway.StartAsync([worker.Url], settings);
        await using var gw2 = await TestGateway.StartAsync([worker.Url], settings);
        var s1 = gw1.Services.GetRequiredService<GatewayScheduling>();
        var s2 = gw2.Services.GetRequiredService<GatewayScheduling>();
        await RedisServer.WaitUntilAsync(() => s1.Slots!.IsShared && s2.Slots!.IsShared && s1.Slots.Replicas == 2 && s2.Slots.Replicas == 2
            && s2.Slots.LimitOf(worker.Url, Slots) == Math.Min(standing, Slots), "both replicas synced, the idle one holding its standing slots");

        using var c1 = TestGateway.Client(gw1, Key);
        using var c2 = TestGateway.Client(gw2, Key);
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var flood = AlternateAsync([c1], 3 * Slots, 2 * Slots, deadline.Token);
        await RedisServer.WaitUntilAsync(() => worker.Running == Slots - Math.Min(standing, Slots), "replica 1 fills the worker but the standing slots");
        var quiet = c2.PostAsync("v1/chat/completions", Body("the idle replica's first request"), deadline.Token);
        await RedisServer.WaitUntilAsync(() => worker.Requests.Any(r => r.Body.Contains("idle replica", StringComparison.Ordinal)),
            "the idle replica's request reaches the worker", 60_000);
        int finished = worker.InferenceCount - worker.Running; // flood requests done by now (a finished one is replaced)
        using (var r = await quiet)
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            await r.Content.ReadAsStringAsync(deadline.Token);
        }

        Assert.Equal(3 * Slots, await flood);
        return (finished, worker.MaxRunning);
    }

    [Fact]
    public async Task IdleReplica_KeepsAStandingSlot_ItsFirstRequestStartsBeforeAnyOfTheFloodsFinishes()
    {
        await using var redis = await RedisServer.StartAsync();
        var (standing, max) = await IdleReplicaFirstRequestAsync(redis, standing: 1);
        var (none, maxNone) = await IdleReplicaFirstRequestAsync(redis, standing: 0);
        output.WriteLine($"flood requests finished before the idle replica's first request started: standing slot {standing}, none {none}; max concurrent {max}, {maxNone}");
        Assert.Equal(0, standing);              // released at once into the slot replica 2 kept
        Assert.True(none >= 1, $"without a standing slot it waits for a flood request to finish: {none}");
        Assert.InRange(max, 1, Slots);          // and the replicas together never exceed the worker's slots
        Assert.InRange(maxNone, 1, Slots);
    }

    [Fact]
    public async Task SessionTurns_AlternatingReplicas_ReachTheSameWorker()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var w1 = await FakeWorker.StartAsync();
        await using var w2 = await FakeWorker.StartAsync();
        var settings = Settings(redis, "gw2b:" + Guid.NewGuid().ToString("N")[..8] + ":");
        await using var gw1 = await TestGateway.StartAsync([w1.Url, w2.Url], settings);
        await using var gw2 = await TestGateway.StartAsync([w1.Url, w2.Url], settings);
        using var c1 = TestGateway.Client(gw1, Key);
        using var c2 = TestGateway.Client(gw2, Key);
        HttpClient[] clients = [c1, c2];
        const int Sessions = 10, Turns = 4;

        async Task Session(int s)
        {
            string history = "";
            for (int t = 0; t < Turns; t++)
            {
                history += $" [session {s} turn {t}] tell me more about topic {s * 7919 % 101}.";
                using var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = Body(history) };
                req.Headers.Add("x-session-id", "agent-session-" + s.ToString(CultureInfo.InvariantCulture));
                using var r = await clients[(s + t) % 2].SendAsync(req);
                Assert.Equal(HttpStatusCode.OK, r.StatusCode);
                await r.Content.ReadAsStringAsync();
            }
        }

        await Task.WhenAll(Enumerable.Range(0, Sessions).Select(Session));

        int WorkersOf(int s)
        {
            string mark = $"[session {s} turn ";
            int Turned(FakeWorker w) => w.Requests.Count(q => q.Body.Contains(mark, StringComparison.Ordinal));
            return (Turned(w1) > 0 ? 1 : 0) + (Turned(w2) > 0 ? 1 : 0);
        }

        for (int s = 0; s < Sessions; s++)
        {
            Assert.True(WorkersOf(s) == 1, $"session {s}'s turns went to both workers");
        }

        output.WriteLine($"worker 1 served {w1.InferenceCount} turns, worker 2 {w2.InferenceCount}");
        Assert.Equal(Sessions * Turns, w1.InferenceCount + w2.InferenceCount);
    }

    [Fact]
    public async Task RedisKilledMidRun_ServingContinues_AndIsSharedAgainWhenItReturns()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var worker = await FakeWorker.StartAsync();
        worker.StreamChunks = 4;
        worker.ChunkDelay = TimeSpan.FromMilliseconds(10);
        var settings = Settings(redis, "gw2k:" + Guid.NewGuid().ToString("N")[..8] + ":");
        await using var gw1 = await TestGateway.StartAsync([worker.Url], settings);
        await using var gw2 = await TestGateway.StartAsync([worker.Url], settings);
        var s1 = gw1.Services.GetRequiredService<GatewayScheduling>();
        var s2 = gw2.Services.GetRequiredService<GatewayScheduling>();
        using var c1 = TestGateway.Client(gw1, Key);
        using var c2 = TestGateway.Client(gw2, Key);
        HttpClient[] clients = [c1, c2];
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await RedisServer.WaitUntilAsync(() => s1.Slots!.IsShared && s2.Slots!.IsShared, "both replicas share slots");

        var before = AlternateAsync(clients, 60, 6, deadline.Token);
        await Task.Delay(100);
        redis.Kill(); // mid-run
        Assert.Equal(60, await before);
        await RedisServer.WaitUntilAsync(() => !s1.Slots!.IsShared && !s2.Slots!.IsShared, "both replicas notice Redis is gone");
        Assert.Equal(40, await AlternateAsync(clients, 40, 6, deadline.Token)); // outage: still served
        var outage = await ScrapeAsync(gw1);
        Assert.Equal(0, outage.Value("gateway_slots_shared"));          // the operator sees the fallback
        Assert.Equal(2, outage.Value("gateway_slot_replicas"));         // it divides by the replicas last seen
        Assert.InRange(outage.Value("gateway_worker_slot_limit", ("worker", worker.Url)), 1, Slots);

        await redis.RestartAsync();
        await RedisServer.WaitUntilAsync(() => s1.Slots!.IsShared && s2.Slots!.IsShared && s1.Store.IsShared && s2.Store.IsShared,
            "both replicas share state again", 30_000);
        Assert.Equal(40, await AlternateAsync(clients, 40, 6, deadline.Token));
        Assert.Equal(2, s1.Slots!.Replicas);
        Assert.Equal(1, (await ScrapeAsync(gw1)).Value("gateway_slots_shared"));
        Assert.True(worker.MaxRunning <= 2 * Slots, $"max concurrent {worker.MaxRunning}");
    }

    private static async Task<Exposition> ScrapeAsync(GatewayHost gateway) =>
        Exposition.Parse(await gateway.Services.GetRequiredService<GatewayMetrics>().ScrapeAsync());
}
