using Gateway.State;
using StackExchange.Redis;

namespace Gateway.Tests.State;

/// <summary>
/// A worker's slots split across replicas through a real redis-server: the grants never add up to more than the
/// slots, a replica may use what the others do not need, contention converges to even shares, a dead replica's share
/// heals away, and without Redis each replica keeps serving on a fallback share.
/// </summary>
public sealed class SharedSlotsTests : IAsyncLifetime
{
    private const string W = "http://worker-1:8000";
    private RedisServer _server = null!;
    private readonly List<RedisConnection> _connections = [];

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var c in _connections)
        {
            await c.DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    private async Task<SharedSlots> Replica(string id, TimeSpan? lease = null)
    {
        var c = await _server.ConnectAsync();
        _connections.Add(c);
        return new SharedSlots(c, "t:", id, lease);
    }

    private static ValueTask Sync(SharedSlots s, int inFlight, int want, int slots = 4) =>
        s.SyncAsync([new SlotDemand(W, slots, inFlight, want)]);

    [Fact]
    public async Task OthersInFlight_CountsTheOtherReplicasRequests_NotOwn()
    {
        var a = await Replica("a");
        var b = await Replica("b");
        Assert.Equal(0, a.OthersInFlight()); // before any sync
        await Sync(a, inFlight: 3, want: 3);
        await Sync(b, inFlight: 1, want: 1);
        await Sync(a, inFlight: 3, want: 3);
        Assert.Equal(1, a.OthersInFlight());
        Assert.Equal(3, b.OthersInFlight());
    }

    [Fact]
    public async Task BeforeFirstSync_NothingIsGranted()
    {
        var a = await Replica("a");
        Assert.Equal(0, a.LimitOf(W, 4));
        Assert.False(a.IsShared);
    }

    [Fact]
    public async Task OneBusyReplica_GetsEverySlot_TheIdleOneKeepsNone()
    {
        var a = await Replica("a");
        var b = await Replica("b");
        await Sync(b, inFlight: 0, want: 0);
        await Sync(a, inFlight: 0, want: 4);
        Assert.Equal(4, a.LimitOf(W, 4)); // work-conserving: b needs nothing
        await Sync(b, inFlight: 0, want: 0);
        Assert.Equal(0, b.LimitOf(W, 4));
        Assert.Equal(2, a.Replicas);
    }

    [Fact]
    public async Task Contention_NewcomerWaitsForFreedSlots_ThenSharesEvenly()
    {
        var a = await Replica("a");
        var b = await Replica("b");
        await Sync(a, inFlight: 0, want: 4);
        Assert.Equal(4, a.LimitOf(W, 4));

        // b arrives with a queue while a holds all 4: b's target is 2, but no slot is free yet.
        await Sync(b, inFlight: 0, want: 4);
        Assert.Equal(0, b.LimitOf(W, 4));

        // a learns its target (2): it stops taking new requests beyond 2 while its 4 finish.
        await Sync(a, inFlight: 4, want: 4);
        Assert.Equal(2, a.LimitOf(W, 4));
        await Sync(b, inFlight: 0, want: 4);
        Assert.Equal(0, b.LimitOf(W, 4)); // a still holds 4 (in flight)

        await Sync(a, inFlight: 2, want: 4); // two finished: a's grant falls to 2
        await Sync(b, inFlight: 0, want: 4);
        Assert.Equal(2, b.LimitOf(W, 4));
        Assert.Equal(2, a.LimitOf(W, 4));
        Assert.Equal(2, b.ClusterInFlight(W)); // a's 2, b's 0
    }

    [Fact]
    public async Task ShrinkingReplica_KeepsTheSlotsItMayDispatchIntoDuringTheSync_UntilItsLimitHasFallen()
    {
        var a = await Replica("a");
        var b = await Replica("b");
        await Sync(a, inFlight: 0, want: 4);
        await Sync(b, inFlight: 0, want: 4);
        // a reports 2 in flight, but its queue may fill its limit in force (4) while the script runs: a keeps 4.
        await Sync(a, inFlight: 2, want: 4);
        Assert.Equal(2, a.LimitOf(W, 4)); // from now on a dispatches up to its target only
        await Sync(b, inFlight: 0, want: 4);
        Assert.Equal(0, b.LimitOf(W, 4));
        await Sync(a, inFlight: 2, want: 4); // limit in force 2: the grant falls to 2
        await Sync(b, inFlight: 0, want: 4);
        Assert.Equal(2, b.LimitOf(W, 4));
    }

    [Fact]
    public async Task DeadReplica_ItsShareHealsAfterTheLease()
    {
        var lease = TimeSpan.FromMilliseconds(400);
        var a = await Replica("a", lease);
        var b = await Replica("b", lease);
        await Sync(b, inFlight: 3, want: 3);
        await Sync(a, inFlight: 0, want: 4);
        Assert.Equal(1, a.LimitOf(W, 4));
        // b stops syncing (crashed): after its lease its grant and counts are gone.
        await Task.Delay(lease * 2);
        await Sync(a, inFlight: 1, want: 4);
        Assert.Equal(4, a.LimitOf(W, 4));
        Assert.Equal(1, a.Replicas);
    }

    [Fact]
    public async Task RandomDispatchAndCompletion_ThreeReplicas_NeverMoreInFlightThanSlots()
    {
        const int Slots = 5;
        var replicas = new[] { await Replica("r0"), await Replica("r1"), await Replica("r2") };
        var inFlight = new int[3];
        var queued = new int[3];
        var random = new Random(7);
        int served = 0;
        for (int step = 0; step < 400; step++)
        {
            int r = random.Next(3);
            queued[r] += random.Next(3);                         // arrivals
            for (int done = random.Next(inFlight[r] + 1); done > 0; done--)
            {
                inFlight[r]--;                                   // completions
            }

            await replicas[r].SyncAsync([new SlotDemand(W, Slots, inFlight[r], Math.Min(Slots, inFlight[r] + queued[r]))]);
            while (queued[r] > 0 && inFlight[r] < replicas[r].LimitOf(W, Slots))
            {
                queued[r]--;                                     // dispatch within the limit
                inFlight[r]++;
                served++;
            }

            Assert.True(inFlight.Sum() <= Slots, $"step {step}: in flight {string.Join("+", inFlight)} > {Slots}");
        }

        Assert.True(served > 200, $"only {served} dispatched: the split starves replicas");
    }

    [Fact]
    public async Task RedisAway_FallsBackToLastShareOrEvenSplit_ThenReconciles()
    {
        var a = await Replica("a");
        var b = await Replica("b");
        await Sync(a, inFlight: 0, want: 0);
        await Sync(b, inFlight: 0, want: 4);
        await Sync(a, inFlight: 0, want: 0);
        Assert.Equal(0, a.LimitOf(W, 4));
        Assert.Equal(4, b.LimitOf(W, 4));
        Assert.Equal(2, a.Replicas);

        _server.Kill();
        await RedisServer.WaitUntilAsync(() => !_connections[0].IsConnected, "a notices Redis is gone");
        await Sync(a, inFlight: 0, want: 4); // no throw
        Assert.False(a.IsShared);
        Assert.Equal(2, a.LimitOf(W, 4)); // even split over the 2 replicas it last saw: serving continues

        await _server.RestartAsync();
        await RedisServer.WaitUntilAsync(() => _connections[0].IsConnected, "a reconnects", 20_000);
        await Sync(a, inFlight: 2, want: 4);
        Assert.True(a.IsShared);
        Assert.Equal(4, a.LimitOf(W, 4)); // the restarted Redis is empty: a holds what it runs and claims the rest
    }
}
