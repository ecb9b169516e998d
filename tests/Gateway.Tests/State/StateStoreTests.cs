using Gateway.State;
using StackExchange.Redis;

namespace Gateway.Tests.State;

public sealed class StateStoreTests : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private async Task<RedisStateStore> Replica(string id) =>
        new(await _server.ConnectAsync(), new RedisStateStoreOptions { ReplicaId = id }, ownsClient: true);

    [Fact]
    public async Task InMemory_CountersWindowsSessions_Work()
    {
        await using var s = new InMemoryStateStore();
        s.AddService("t/k", 10);
        s.AddService("t/k", 5);
        Assert.Equal(15, s.GetService()["t/k"]);
        Assert.Equal(3, await s.IncrementWindowAsync("w", 3, TimeSpan.FromMinutes(1)));
        Assert.Equal(7, await s.IncrementWindowAsync("w", 4, TimeSpan.FromMinutes(1)));
        await s.SetSessionAsync("sess", "worker-1", TimeSpan.FromMinutes(1));
        Assert.Equal("worker-1", await s.GetSessionAsync("sess"));
        await s.SetSessionAsync("short", "worker-2", TimeSpan.FromMilliseconds(1));
        await Task.Delay(20);
        Assert.Null(await s.GetSessionAsync("short"));
        Assert.False(s.IsShared);
    }

    [Fact]
    public async Task Redis_TwoReplicas_SeeClusterWideService()
    {
        await using var a = await Replica("a");
        await using var b = await Replica("b");
        a.AddService("org/k1", 100);
        b.AddService("org/k1", 50);
        b.AddService("org/k2", 7);
        await a.SyncAsync();
        await b.SyncAsync();
        await a.SyncAsync();
        Assert.True(a.IsShared);
        Assert.Equal(150, a.GetService()["org/k1"]);
        Assert.Equal(7, a.GetService()["org/k2"]);
        Assert.Equal(150, b.GetService()["org/k1"]);
        a.AddService("org/k1", 1); // visible locally before the next sync
        Assert.Equal(151, a.GetService()["org/k1"]);
    }

    [Fact]
    public async Task Redis_WindowsAndSessions_SharedWithTtl()
    {
        await using var a = await Replica("a");
        await using var b = await Replica("b");
        Assert.Equal(10, await a.IncrementWindowAsync("tpm:org:1", 10, TimeSpan.FromSeconds(60)));
        Assert.Equal(25, await b.IncrementWindowAsync("tpm:org:1", 15, TimeSpan.FromSeconds(60)));
        await using var raw = await _server.ConnectAsync();
        var ttl = await raw.Database.KeyTimeToLiveAsync("gw:win:tpm:org:1");
        Assert.InRange(ttl!.Value.TotalMilliseconds, 1, 60_000);
        await a.SetSessionAsync("s1", "worker-9", TimeSpan.FromSeconds(30));
        Assert.Equal("worker-9", await b.GetSessionAsync("s1"));
        await a.SetSessionAsync("s2", "worker-1", TimeSpan.FromMilliseconds(50));
        await Task.Delay(150);
        Assert.Null(await b.GetSessionAsync("s2"));
    }

    [Fact]
    public async Task Redis_KilledAndRestarted_ReplicasServeLocallyThenReconcile()
    {
        await using var a = await Replica("a");
        await using var b = await Replica("b");
        a.AddService("t/k", 100);
        b.AddService("t/k", 40);
        await a.SyncAsync();
        await b.SyncAsync();
        await a.SyncAsync();
        Assert.Equal(140, a.GetService()["t/k"]);
        await a.IncrementWindowAsync("win", 5, TimeSpan.FromMinutes(5));

        _server.Kill();
        await RedisServer.WaitUntilAsync(() => !a.IsShared && !b.IsShared, "both replicas notice Redis is gone");

        // Outage: everything keeps answering from local state.
        a.AddService("t/k", 10);
        b.AddService("t/k", 20);
        await a.SyncAsync(); // no throw
        Assert.False(a.IsShared);
        Assert.Equal(150, a.GetService()["t/k"]); // cluster as last seen (140) + own since (10); b's 20 is unknown here
        Assert.Equal(8, await a.IncrementWindowAsync("win", 3, TimeSpan.FromMinutes(5))); // last seen 5 + local 3
        await a.SetSessionAsync("sess", "worker-2", TimeSpan.FromMinutes(1));
        Assert.Equal("worker-2", await a.GetSessionAsync("sess"));

        // Redis returns empty (no persistence): totals are re-sent (absolute per replica), deltas flushed.
        await _server.RestartAsync();
        await using var raw = await _server.ConnectAsync();
        await RedisServer.WaitUntilAsync(() => a.IsShared || TrySync(a), "replica a reconnects and syncs");
        await RedisServer.WaitUntilAsync(() => TrySync(b) && b.IsShared, "replica b reconnects and syncs");
        await a.SyncAsync();
        Assert.True(a.IsShared);
        Assert.Equal(170, a.GetService()["t/k"]); // 100 + 40 + 10 + 20: nothing lost
        Assert.Equal(170, b.GetService()["t/k"]);
        Assert.Equal("worker-2", await b.GetSessionAsync("sess")); // binding made during the outage was written back
        // The window's pre-outage 5 lived only in the dead Redis; the outage's 3 was flushed.
        Assert.Equal(3, (double)await raw.Database.StringGetAsync("gw:win:win"));
        Assert.InRange((await raw.Database.KeyTimeToLiveAsync("gw:win:win"))!.Value.TotalMilliseconds, 1, 300_000);
    }

    private static bool TrySync(RedisStateStore s)
    {
        s.SyncAsync().AsTask().GetAwaiter().GetResult();
        return s.IsShared;
    }
}
