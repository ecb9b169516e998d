using Gateway.Core.Scheduling;
using Gateway.State;
using Xunit.Abstractions;

namespace Gateway.Tests.State;

/// <summary>
/// Two gateway replicas, each with its own hfair scheduler, share tenant service through one real Redis.
/// Skewed ingress: replica 1 receives 80% of the requests (all of org A's and some of org B's) and holds 80% of the
/// dispatch capacity; replica 2 receives 20% (org B only). Weights A=2, B=1: the cluster must still deliver 2/3 : 1/3.
/// </summary>
public sealed class TwoReplicaFairnessTests(ITestOutputHelper output) : IAsyncLifetime
{
    private RedisServer _server = null!;

    public async Task InitializeAsync() => _server = await RedisServer.StartAsync();

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task SharedRedis_SkewedIngress8020_DeliversConfiguredSharesWithin5Percent()
    {
        await using var s1 = new RedisStateStore(await _server.ConnectAsync(), new() { ReplicaId = "r1" }, ownsClient: true);
        await using var s2 = new RedisStateStore(await _server.ConnectAsync(), new() { ReplicaId = "r2" }, ownsClient: true);
        var (a, b) = await RunAsync(s1, s2);
        var shareA = a / (a + b);
        output.WriteLine($"shared redis: share of A {shareA:F4} (target 0.6667)");
        Assert.InRange(shareA, 2.0 / 3 * 0.95, 2.0 / 3 * 1.05);
    }

    [Fact]
    public async Task LocalStateOnly_SameIngress_MissesTheShares()
    {
        // The contrast: without shared counters each replica is fair only over its own traffic.
        await using var s1 = new InMemoryStateStore();
        await using var s2 = new InMemoryStateStore();
        var (a, b) = await RunAsync(s1, s2);
        var shareA = a / (a + b);
        output.WriteLine($"local only: share of A {shareA:F4} (target 0.6667)");
        Assert.True(shareA < 2.0 / 3 * 0.9, $"share of A {shareA:F3}");
    }

    private static async Task<(double A, double B)> RunAsync(IStateStore store1, IStateStore store2)
    {
        var weights = SchedulingPolicyContext.ParseWeights("orgA=2,orgB=1");
        var r1 = new Replica(store1, slots: 8, weights);
        var r2 = new Replica(store2, slots: 2, weights);
        var random = new Random(42);
        long id = 0;
        const int ticks = 8_000;
        for (var t = 0; t < ticks; t++)
        {
            if (t == 1_000)
            {
                r1.ServiceA = r1.ServiceB = r2.ServiceA = r2.ServiceB = 0; // warm-up done
            }

            // Ingress: 10 requests offered per tick, 8 to replica 1 (A and B alternating), 2 to replica 2 (B);
            // clients back off when 24 of theirs already wait at that replica (bounded queues).
            for (var i = 0; i < 8; i++)
            {
                r1.Offer(i % 2 == 0 ? "orgA/k" : "orgB/k", ++id, random);
            }

            for (var i = 0; i < 2; i++)
            {
                r2.Offer("orgB/k", ++id, random);
            }

            r1.Tick();
            r2.Tick();
            if (t % 5 == 0)
            {
                await r1.Sync.SyncAsync();
                await r2.Sync.SyncAsync();
            }
        }

        return (r1.ServiceA + r2.ServiceA, r1.ServiceB + r2.ServiceB);
    }

    private sealed class Replica
    {
        private readonly HierarchicalFairScheduler _scheduler;
        private readonly int _slots;
        private readonly List<(QueuedRequest R, int Generated)> _running = [];
        private readonly Dictionary<string, int> _queued = new(StringComparer.Ordinal);

        public Replica(IStateStore store, int slots, IReadOnlyDictionary<string, double> weights)
        {
            _scheduler = new HierarchicalFairScheduler(p => weights.TryGetValue(p, out var w) ? w : 1);
            _slots = slots;
            Sync = new SharedServiceSync(_scheduler, store);
            Sync.Track("orgA/k");
            Sync.Track("orgB/k");
        }

        public SharedServiceSync Sync { get; }

        public double ServiceA { get; set; }

        public double ServiceB { get; set; }

        public void Offer(string path, long id, Random random)
        {
            if (_queued.GetValueOrDefault(path) >= 24)
            {
                return;
            }

            _queued[path] = _queued.GetValueOrDefault(path) + 1;
            _scheduler.Enqueue(new QueuedRequest
            {
                Id = id,
                TenantPath = path,
                PromptTokens = random.Next(50, 400),
                ExpectedOutputTokens = random.Next(5, 60),
            });
        }

        public void Tick()
        {
            while (_running.Count < _slots && _scheduler.Count > 0)
            {
                var r = _scheduler.Dequeue()!;
                _queued[r.TenantPath]--;
                Add(r.TenantPath, CostModel.Default.Prefill(r.PromptTokens, 0));
                _running.Add((r, 0));
            }

            for (var i = _running.Count - 1; i >= 0; i--)
            {
                var (r, generated) = _running[i];
                generated++;
                _scheduler.ChargeOutput(r, 1);
                Add(r.TenantPath, CostModel.Default.Output(1));
                if (generated >= r.ExpectedOutputTokens)
                {
                    _scheduler.Complete(r, 0, generated);
                    _running.RemoveAt(i);
                }
                else
                {
                    _running[i] = (r, generated);
                }
            }
        }

        private void Add(string path, double cost)
        {
            if (path == "orgA/k") { ServiceA += cost; } else { ServiceB += cost; }
        }
    }
}
