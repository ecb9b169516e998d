using Gateway.Core.Scheduling;
using Gateway.Core.Tenancy;
using Gateway.Scheduling;
using Gateway.State;

namespace Gateway.Tests.State;

/// <summary>
/// Two gateway replicas over a real redis-server share one worker's slots (<see cref="SharedSlots"/>). A flood entering
/// through replica 1 holds every slot. At replica 2, a quiet tenant with a neighbour there is released at once, marked
/// urgent, without waiting for any of the flood's requests to finish (before, it waited for a flood request to complete
/// and both replicas to re-sync their grants: seconds, live). A tenant alone on replica 2 still waits: the other
/// replicas' work might be its own. The flood, alone in the cluster, is never marked urgent.
/// </summary>
public sealed class ReplicaIsolationTests : IAsyncLifetime
{
    private const string W = "http://worker-1:8000";
    private const int Slots = 4;
    private RedisServer _server = null!;
    private readonly List<IAsyncDisposable> _owned = [];

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync()
    {
        for (int i = _owned.Count - 1; i >= 0; i--)
        {
            await _owned[i].DisposeAsync();
        }

        await _server.DisposeAsync();
    }

    private sealed class Holder
    {
        public FairDispatcher? Dispatcher { get; set; }
    }

    /// <summary>A replica as the gateway composes it: its capacity is its share of the worker's slots, synced on demand.</summary>
    private async Task<(SharedSlots Slots, FairDispatcher Dispatcher)> Replica(string id)
    {
        var c = await _server.ConnectAsync();
        _owned.Add(c);
        var slots = new SharedSlots(c, "iso:", id);
        var holder = new Holder();
        int InFlight() => holder.Dispatcher?.InFlight ?? 0;
        var d = new FairDispatcher(new GatewayQueue(new HierarchicalFairScheduler(), TenantTree.Empty, new QuotaLedger(TimeProvider.System)),
            freeCapacity: () => slots.LimitOf(W, Slots) - InFlight(),
            options: new FairDispatcherOptions { TickInterval = TimeSpan.FromMilliseconds(20) },
            reserve: new ReservedCapacity(reserve: 1),
            shareCapacity: ct => slots.SyncAsync([new SlotDemand(W, Slots, InFlight(), Math.Min(Slots, InFlight() + (holder.Dispatcher?.Queued ?? 0)))], ct),
            remoteInFlight: slots.OthersInFlight);
        holder.Dispatcher = d;
        _owned.Add(d);
        return (slots, d);
    }

    private static long s_id;

    private static QueuedRequest Req(string path) => new()
    {
        Id = Interlocked.Increment(ref s_id),
        TenantPath = path,
        PromptTokens = 100,
        ExpectedOutputTokens = 10,
        EnqueuedTimestamp = TimeProvider.System.GetTimestamp(),
    };

    [Fact]
    public async Task QuietTenantsOnTheOtherReplica_OneWithANeighbourIsReleasedUrgentAtOnce_WhileTheFloodHoldsEverySlot()
    {
        var (_, gw1) = await Replica("gw1");
        var flood = Enumerable.Range(0, Slots + 2).Select(_ => gw1.EnterAsync(Req("org/flood/k"), CancellationToken.None)).ToList();
        var running = new List<DispatchTicket>();
        foreach (var t in flood.Take(Slots))
        {
            running.Add((await t.WaitAsync(TimeSpan.FromSeconds(20))).Ticket!);
        }

        Assert.All(running, t => Assert.False(t.Urgent)); // alone in the cluster: within its share, but nobody to be urgent against
        Assert.Equal(2, gw1.Queued);

        var (slots2, gw2) = await Replica("gw2");
        var first = gw2.EnterAsync(Req("org/quiet-a/k"), CancellationToken.None);
        for (int i = 0; i < 1000 && slots2.OthersInFlight() < Slots; i++)
        {
            await Task.Delay(20); // replica 2's first slot sync
        }

        Assert.Equal(Slots, slots2.OthersInFlight());

        gw2.Pump();
        Assert.False(first.IsCompleted); // alone on replica 2: the flood's slots may be its own tenant's, so it waits
        var second = gw2.EnterAsync(Req("org/quiet-b/k"), CancellationToken.None);
        var quiet = await await Task.WhenAny(first, second).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.NotNull(quiet.Ticket);
        Assert.True(quiet.Ticket!.Urgent);
        Assert.Equal(Slots, slots2.OthersInFlight());     // the flood still holds every slot: nothing of it finished
        Assert.Equal(0, slots2.LimitOf(W, Slots));         // replica 2 was granted nothing: the release overdrew its limit
        Assert.All(flood.Skip(Slots), t => Assert.False(t.IsCompleted)); // and the flood got no more

        quiet.Ticket.Complete(0, 10);
        foreach (var t in running)
        {
            t.Complete(0, 10);
        }

        foreach (var t in new[] { first, second })
        {
            (await t.WaitAsync(TimeSpan.FromSeconds(20))).Ticket!.Complete(0, 10);
        }

        foreach (var t in flood.Skip(Slots))
        {
            (await t.WaitAsync(TimeSpan.FromSeconds(20))).Ticket!.Complete(0, 10);
        }
    }
}
