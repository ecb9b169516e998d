using Gateway.Auth;
using Gateway.Configuration;
using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Gateway.Core.Tenancy;
using Gateway.Fleet;
using Gateway.State;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Scheduling;

/// <summary>
/// The gateway's fair queue, composed from configuration: the tenant tree (<c>Gateway:Scheduling:Tenants</c> merged
/// with every configured API key's <c>org/team/key</c> path), the scheduler named by <c>Gateway:Scheduling:Policy</c>
/// (<c>hfair</c> default, <c>vtc</c>, <c>fcfs</c>), the <see cref="GatewayQueue"/> (caps, timeouts, quotas), the state
/// store (in memory, or Redis when <c>Gateway:State:Redis</c> is set, with <see cref="SharedServiceSync"/> sharing
/// service across replicas) and the <see cref="FairDispatcher"/> that releases requests when the fleet has capacity.
/// <para>Capacity (<see cref="FreeCapacity"/>, the rule in <see cref="SlotCapacity"/>): each eligible worker offers <c>MaxInFlightPerWorker</c> slots, or only
/// the slots it already uses (at least one) while it is saturated (its last report shows more than <c>MaxReportedWaiting</c>
/// waiting requests, less those this gateway saw finish since (<see cref="WorkerInfo.EstimatedWaiting"/>), or
/// KV use at or above <c>KvHighWatermark</c>), and with Redis no more than this replica's share of them
/// (<see cref="SharedSlots"/>); free = total − requests this gateway has dispatched and not finished.</para>
/// </summary>
public sealed class GatewayScheduling : IAsyncDisposable
{
    private static int s_instances;
    private readonly WorkerRegistry _registry;
    private readonly SchedulingOptions _options;
    private readonly SlotCapacity _capacity;
    private readonly FairDispatcher _dispatcher;
    private readonly IServiceAccounting? _accounting;
    private readonly int _standingSlots;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, double> _settled = new(StringComparer.Ordinal);

    /// <summary>Builds the queue and starts the dispatcher's tick.</summary>
    public GatewayScheduling(IOptions<GatewayOptions> options, WorkerRegistry registry, GatewayMetrics metrics, TimeProvider time, IRoutingPolicy routing, RedisConnection? redis = null)
    {
        ArgumentNullException.ThrowIfNull(routing);
        ArgumentNullException.ThrowIfNull(options);
        _registry = registry;
        var o = options.Value;
        _options = o.Scheduling;
        _capacity = new SlotCapacity
        {
            MaxInFlightPerWorker = _options.MaxInFlightPerWorker,
            MaxReportedWaiting = _options.MaxReportedWaiting,
            KvHighWatermark = _options.KvHighWatermark,
            MaxPendingPrefillTokens = _options.MaxPendingPrefillTokens,
        };
        _tree = TenantTree.Build(BuildTreeConfig(o));
        var cost = new CostModel(_options.InputWeight, _options.OutputWeight);
        Scheduler = SchedulingPolicies.Create(_options.Policy, new SchedulingPolicyContext
        {
            Time = time,
            Cost = cost,
            Locality = LocalityOptions.Default with { LagBound = _options.LocalityLagBound },
        });
        _accounting = Scheduler as IServiceAccounting;
        var ledger = new QuotaLedger(time);
        Queue = new GatewayQueue(Scheduler, Tree, ledger, new OverloadOptions
        {
            MaxQueued = _options.MaxQueued,
            BatchAdmitFraction = _options.BatchAdmitFraction,
            DefaultTenantMaxQueued = _options.DefaultTenantMaxQueued,
            DefaultQueueTimeout = _options.DefaultQueueTimeout,
            RetryAfter = _options.RetryAfter,
        }, time, cost);

        if (redis is null)
        {
            Store = new InMemoryStateStore(time);
        }
        else
        {
            int instance = Interlocked.Increment(ref s_instances) - 1;
            string replica = o.State.ReplicaId.Length > 0 ? o.State.ReplicaId
                : Environment.MachineName + "-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)
                  + (instance > 0 ? "-" + instance.ToString(System.Globalization.CultureInfo.InvariantCulture) : "");
            Store = new RedisStateStore(redis, new RedisStateStoreOptions { Prefix = o.State.Prefix, ReplicaId = replica }, time);
            SharedQuota = new SharedQuotaLedger(redis, ledger, o.State.Prefix, replica, o.State.QuotaFailMode, time);
            Slots = new SharedSlots(redis, o.State.Prefix, replica, o.State.SlotLeaseTtl);
            _standingSlots = o.State.StandingSlots;
            metrics.SetRedisHealthSource(() => Store.IsShared);
            SharedSlotsMetrics.Register(metrics, Slots, registry, _options.MaxInFlightPerWorker);
        }

        SharedServiceSync? sync = null;
        if (_accounting is not null)
        {
            sync = new SharedServiceSync(Scheduler, Store);
            TrackLeaves(sync, Tree);
        }

        Sync = sync;
        Locality = new LocalityPick(routing, _options.Locality, sendToPickedWorker: _options.SendToPickedWorker);
        Reserve = new ReservedCapacity(_options.ReservedSlots, _options.OverShareFactor);
        _dispatcher = new FairDispatcher(Queue, FreeCapacity, new FairDispatcherOptions { TickInterval = _options.TickInterval, Overdraw = _options.Overdraw }, time, sync, metrics, metrics.TenantLabel, Locality, SharedQuota, Reserve,
            Slots is null ? null : ShareSlotsAsync, Slots is null ? null : Slots.OthersInFlight);
    }

    /// <summary>The tenant tree in use (replaced by <see cref="ReloadTenants"/>).</summary>
    public TenantTree Tree => Volatile.Read(ref _tree);

    private TenantTree _tree;

    /// <summary>
    /// Applies the tenant tree of reloaded options (weights, priority classes, quotas, model allow-lists, new keys'
    /// leaves). Queued and in-flight requests keep their place and their charges: scheduler state is keyed by path, so
    /// a changed weight applies from the next pick on. Throws <see cref="TenantConfigException"/> (and changes nothing)
    /// when the new tree is invalid.
    /// </summary>
    public void ReloadTenants(GatewayOptions options)
    {
        var tree = TenantTree.Build(BuildTreeConfig(options));
        // SharedServiceSync's path table is read by the dispatcher's tick under the dispatcher's lock: track new
        // leaves inside that lock, not beside it (a Dictionary written while the tick enumerates it would throw there).
        _dispatcher.Reload(tree, Sync is { } sync ? () => TrackLeaves(sync, tree) : null);
        Volatile.Write(ref _tree, tree);
    }

    /// <summary>The scheduler ordering waiting requests.</summary>
    public IRequestScheduler Scheduler { get; }

    /// <summary>The admission queue.</summary>
    public GatewayQueue Queue { get; }

    /// <summary>Where shared state lives.</summary>
    public IStateStore Store { get; }

    /// <summary>Cross-replica service sync (null for schedulers that do not account service, e.g. fcfs).</summary>
    public SharedServiceSync? Sync { get; }

    /// <summary>The store holding session → worker bindings for every replica (null without Redis: the routing policy's own table).</summary>
    public IStateStore? SharedSessions => Store is RedisStateStore ? Store : null;

    /// <summary>Each worker's slots split across replicas through Redis (null without Redis: this replica has them all).</summary>
    public SharedSlots? Slots { get; }

    /// <summary>Quotas shared across replicas through Redis (null without Redis: the local ledger is the cluster).</summary>
    public SharedQuotaLedger? SharedQuota { get; }

    /// <summary>The dispatch-time locality pick (the same <see cref="LocalityPick"/> the simulator uses).</summary>
    public LocalityPick Locality { get; }

    /// <summary>Worker priority sent with requests released within their share (<c>Gateway:Scheduling:UnderSharePriority</c>).</summary>
    public int UnderSharePriority => _options.UnderSharePriority;

    /// <summary>Slots held back for tenants not over their in-flight share (the same <see cref="ReservedCapacity"/> the simulator uses).</summary>
    public ReservedCapacity Reserve { get; }

    /// <summary>The dispatcher in the request path.</summary>
    public FairDispatcher Dispatcher => _dispatcher;

    /// <summary>
    /// A request was handed to a worker or its prefill finished there (its first token). Under the pending-prefill
    /// capacity rule (<c>MaxPendingPrefillTokens</c>) both change what the fleet can take, so the queue is pumped now:
    /// otherwise a request waiting for a saturated worker waits for the next completion or tick (up to
    /// <c>TickInterval</c>, 100 ms), which the live noisy-neighbour run showed in a within-share tenant's TTFT
    /// (docs/policies/hfair.md).
    /// </summary>
    public void OnPrefillChanged()
    {
        if (_options.Enabled && _options.MaxPendingPrefillTokens > 0)
        {
            _dispatcher.Pump();
        }
    }

    /// <summary>Whether requests go through the queue.</summary>
    public bool Enabled => _options.Enabled;

    /// <summary>Records a settled request's service (cost units) for /status.</summary>
    public void RecordSettled(string tenantPath, double cost) =>
        _settled.AddOrUpdate(tenantPath, static (_, c) => c, static (_, v, c) => v + c, cost);

    /// <summary>Settled service per tenant path with its weight and the weights of its siblings (for /status).</summary>
    public IReadOnlyList<(string Path, double Service, double Entitlement)> ServiceShares()
    {
        // Entitlement of a leaf = product over its path of weight / sum of sibling weights (among nodes that were served).
        var served = new Dictionary<string, double>(_settled, StringComparer.Ordinal);
        var result = new List<(string, double, double)>(served.Count);
        foreach (var (path, service) in served)
        {
            double share = 1;
            var node = Tree.Find(path);
            for (var n = node; n is not null; n = n.Parent)
            {
                var siblings = n.Parent is null ? Tree.Roots : n.Parent.Children;
                double sum = 0;
                foreach (var s in siblings)
                {
                    if (IsServed(s.Path, served))
                    {
                        sum += s.Weight;
                    }
                }

                share *= sum > 0 ? n.Weight / sum : 1;
            }

            result.Add((path, service, node is null ? double.NaN : share));
        }

        result.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return result;
    }

    private static bool IsServed(string path, Dictionary<string, double> served)
    {
        foreach (var p in served.Keys)
        {
            if (p == path || p.StartsWith(path + "/", StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Requests the fleet can take now beyond what this gateway already dispatched.</summary>
    public int FreeCapacity()
    {
        // Pending-prefill rule: a request released from the queue but not yet handed to a worker (routing, connect) is a
        // prompt about to land on one of them, not yet in any worker's PendingPrefillTokens (SlotCapacity.InTransit).
        bool inTransit = false;
        if (_capacity.MaxPendingPrefillTokens > 0)
        {
            int dispatched = 0;
            foreach (var w in _registry.All)
            {
                dispatched += w.Info.InFlight;
            }

            inTransit = _capacity.InTransit(_dispatcher.InFlight, dispatched);
        }

        int total = 0;
        foreach (var w in _registry.All)
        {
            var i = w.Info;
            if (!i.Eligible)
            {
                continue;
            }

            int cap = _capacity.SlotsOf(i, inTransit);
            // With Redis: no more than this replica's share of the worker's slots (SharedSlots).
            total += Slots is null ? cap : Math.Min(cap, Slots.LimitOf(i.Id, _options.MaxInFlightPerWorker));
        }

        return total - _dispatcher.InFlight;
    }

    /// <summary>
    /// One slot-share sync: this replica's in-flight count and demand per worker (<see cref="ReplicaSlotShare.Demand"/>,
    /// at least <c>Gateway:State:StandingSlots</c>), then its new grants.
    /// </summary>
    private ValueTask ShareSlotsAsync(CancellationToken ct)
    {
        var workers = _registry.All;
        int routed = 0;
        foreach (var w in workers)
        {
            routed += w.Info.InFlight;
        }

        // Released by the queue but not yet on a worker (routing, connect): counted on every worker, so a grant never
        // shrinks below what this replica may be about to send there.
        int transit = Math.Max(0, _dispatcher.InFlight - routed);
        int queued = _dispatcher.Queued;
        int slots = _options.MaxInFlightPerWorker;
        var demands = new List<SlotDemand>(workers.Count);
        foreach (var w in workers)
        {
            int inFlight = w.Info.InFlight + transit;
            demands.Add(new SlotDemand(w.Info.Id, slots, inFlight, ReplicaSlotShare.Demand(inFlight, queued, slots, _standingSlots)));
        }

        return Slots!.SyncAsync(demands, ct);
    }

    /// <summary>Builds the request the queue sees for a tenant path (<paramref name="resumeCredit"/>: a resumed agent turn's credit).</summary>
    public QueuedRequest CreateRequest(long id, string tenantPath, string? sessionId, string model, int promptTokens, int expectedOutputTokens, long now, object? payload, RouteRequest? route = null, double resumeCredit = 0, PriorityClass? requestedPriority = null)
    {
        var node = Tree.Find(tenantPath);
        return new QueuedRequest
        {
            Id = id,
            TenantPath = tenantPath,
            SessionId = sessionId,
            PromptTokens = promptTokens,
            ExpectedOutputTokens = expectedOutputTokens,
            PriorityClass = (int)PriorityRequest.Effective(node?.Priority ?? PriorityClass.Interactive, requestedPriority),
            Sheddable = node?.Sheddable ?? false,
            Model = model,
            EnqueuedTimestamp = now,
            Route = route,
            Payload = payload,
            ResumeCredit = resumeCredit,
        };
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _dispatcher.DisposeAsync().ConfigureAwait(false);
        await Store.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>The configured tree plus a node for every configured key path (org/team/key) it does not list.</summary>
    public static TenantTreeConfig BuildTreeConfig(GatewayOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var roots = new List<TenantNodeOptions>(options.Scheduling.Tenants);
        foreach (var k in options.Auth.Keys)
        {
            Ensure(roots, k.Tenant, k.Weight);
        }

        if (options.Auth.DemoKey.Enabled)
        {
            Ensure(roots, options.Auth.DemoKey.Tenant, options.Auth.DemoKey.Weight);
        }

        return new TenantTreeConfig { Tenants = roots.ConvertAll(r => r.ToConfig()) };
    }

    private static void TrackLeaves(SharedServiceSync sync, TenantTree tree)
    {
        foreach (var node in tree.Nodes.Values)
        {
            if (node.Children.Count == 0)
            {
                // Requests carry leaf (key) paths; tracking only leaves never counts service twice.
                sync.Track(node.Path);
            }
        }
    }

    private static void Ensure(List<TenantNodeOptions> roots, string path, double leafWeight)
    {
        var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var level = roots;
        for (int i = 0; i < parts.Length; i++)
        {
            var node = level.Find(n => n.Name == parts[i]);
            if (node is null)
            {
                node = new TenantNodeOptions { Name = parts[i], Weight = i == parts.Length - 1 ? leafWeight : 1.0 };
                level.Add(node);
            }

            level = node.Children;
        }
    }
}
