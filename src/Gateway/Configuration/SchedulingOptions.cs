using Gateway.Core.Tenancy;

namespace Gateway.Configuration;

/// <summary>
/// The gateway-held fair queue (section <c>Gateway:Scheduling</c>): which scheduler orders waiting requests, when a
/// worker counts as saturated, overload limits and the tenant tree (org → team → key) with weights, priority classes
/// and quotas. API-key leaves named in <c>Gateway:Auth:Keys</c> that the tree does not list are added with the key's
/// weight, so the embedded default needs no tree at all.
/// </summary>
public sealed class SchedulingOptions
{
    /// <summary>Scheduler: <c>hfair</c> (hierarchical fair shares, default), <c>vtc</c> or <c>fcfs</c>.</summary>
    public string Policy { get; set; } = "hfair";

    /// <summary>False sends every request straight to routing (no gateway queue).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Requests the gateway lets run on one worker at once (its slots); the saturation estimate stops releasing below this when the worker reports a queue or a nearly full KV cache.</summary>
    public int MaxInFlightPerWorker { get; set; } = 32;

    /// <summary>A worker reporting more waiting requests than this (last poll) gets no new requests from the queue until its own queue drains.</summary>
    public int MaxReportedWaiting { get; set; } = 4;

    /// <summary>A worker whose reported KV use is at least this fraction gets no new requests from the queue.</summary>
    public double KvHighWatermark { get; set; } = 0.97;

    /// <summary>Requests the gateway holds in total.</summary>
    public int MaxQueued { get; set; } = 10_000;

    /// <summary>Per-tenant (key path) queue cap when the tree sets no <c>MaxQueued</c> on the path.</summary>
    public int DefaultTenantMaxQueued { get; set; } = 1_000;

    /// <summary>Queue timeout when the tree sets none (→ 429 with Retry-After).</summary>
    public TimeSpan DefaultQueueTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Batch requests are refused once the queue holds this fraction of <see cref="MaxQueued"/>.</summary>
    public double BatchAdmitFraction { get; set; } = 0.8;

    /// <summary>Retry-After sent with queue-full, shed and timeout rejections.</summary>
    public TimeSpan RetryAfter { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Cost weight of an uncached prompt token (w_in).</summary>
    public double InputWeight { get; set; } = 1.0;

    /// <summary>Cost weight of a generated token (w_out).</summary>
    public double OutputWeight { get; set; } = 2.0;

    /// <summary>Locality within a fairness bound (hfair): lag bound in cost units.</summary>
    public double LocalityLagBound { get; set; } = 4096;

    /// <summary>
    /// Locality pick on dispatch (hfair with a routing policy that keeps a prefix index, e.g. kv-aware): when a request
    /// finishes on a worker, the next request released is the fair-enough one with the most tokens cached on that worker.
    /// </summary>
    public bool Locality { get; set; } = true;

    /// <summary>
    /// A request the locality pick released for the worker that freed a slot goes to that worker on its first attempt
    /// (while it is eligible and holds at least as much of the prompt as any other worker) instead of being routed again.
    /// Off by default: measured worse for <c>kv-aware</c> on the WEKA agent trace (docs/policies/hfair.md).
    /// </summary>
    public bool SendToPickedWorker { get; set; }

    /// <summary>
    /// Capacity rule, 0 = off: a worker takes a new request from the queue only while the prompt tokens this gateway sent
    /// it and that are not prefilled yet (<c>WorkerInfo.PendingPrefillTokens</c>) are below this. Keeps the order of
    /// service in the gateway's queue instead of the engines' FCFS prefill queues (noisy neighbour, docs/policies/hfair.md).
    /// </summary>
    public long MaxPendingPrefillTokens { get; set; }

    /// <summary>
    /// Free slots of the fleet (<see cref="MaxInFlightPerWorker"/> per worker, less saturated ones) held back for tenants
    /// not over their in-flight share (<c>ReservedCapacity</c>, hfair only; 0 = off): a tenant holding
    /// <see cref="OverShareFactor"/> x its weighted share of the requests in flight waits for unreserved capacity, so a
    /// within-share tenant's request finds a slot at once under a noisy neighbour's flood (docs/policies/hfair.md).
    /// </summary>
    public int ReservedSlots { get; set; } = Gateway.Core.Scheduling.ReservedCapacity.DefaultReserve;

    /// <summary>A tenant holding at least this many times its weighted share of the in-flight requests may not take a reserved slot.</summary>
    public double OverShareFactor { get; set; } = Gateway.Core.Scheduling.ReservedCapacity.DefaultOverShareFactor;

    /// <summary>
    /// Worker priority (<c>x-request-priority</c>, 0..1000) of a request released while its tenant was not over its share
    /// (hfair; <c>ReservedCapacity.IsUrgent</c>): the engine admits it first, gives its prefill the step and preempts
    /// lower-priority sequences when KV is short. 0 = no hint. Added to a resumed agent turn's priority.
    /// </summary>
    public int UnderSharePriority { get; set; } = Gateway.Core.Scheduling.ReservedCapacity.DefaultUnderSharePriority;

    /// <summary>
    /// Gateway replicas over Redis, no slot free and none lent to take back: a request of a tenant under its in-flight
    /// share while another tenant of this replica has work is released at once beyond the replica's slot grant (at most
    /// <see cref="ReservedSlots"/> outstanding; <c>ReservedCapacity.Overdraw</c>) instead of waiting for the replicas
    /// to re-split the slots. Default on; one gateway never overdraws.
    /// </summary>
    public bool Overdraw { get; set; } = true;

    /// <summary>How often queue timeouts are expired and shared service is synced.</summary>
    public TimeSpan TickInterval { get; set; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The tenant tree's top-level nodes (orgs).</summary>
    public List<TenantNodeOptions> Tenants { get; set; } = [];
}

/// <summary>One tenant-tree node as configured (bound to <see cref="TenantNodeConfig"/>).</summary>
public sealed class TenantNodeOptions
{
    /// <summary>Path segment (no '/').</summary>
    public string Name { get; set; } = "";

    /// <summary>Share weight among siblings.</summary>
    public double Weight { get; set; } = 1.0;

    /// <summary><c>Interactive</c> or <c>Batch</c>; empty inherits.</summary>
    public PriorityClass? Priority { get; set; }

    /// <summary>Batch work of this subtree may be shed under overload; empty inherits.</summary>
    public bool? Sheddable { get; set; }

    /// <summary>Tokens (prompt + output) per minute.</summary>
    public double? TokensPerMinute { get; set; }

    /// <summary>Requests admitted per minute.</summary>
    public int? RequestsPerMinute { get; set; }

    /// <summary>Requests admitted and not finished (queued + in flight).</summary>
    public int? MaxConcurrent { get; set; }

    /// <summary>Budget in effective cost units.</summary>
    public double? Budget { get; set; }

    /// <summary>Requests waiting in the queue under this node (→ 429 above).</summary>
    public int? MaxQueued { get; set; }

    /// <summary>Longest wait in the queue for this subtree (→ 429).</summary>
    public TimeSpan? QueueTimeout { get; set; }

    /// <summary>Models this subtree may use; empty = no restriction at this level.</summary>
    public List<string> Models { get; set; } = [];

    /// <summary>Children.</summary>
    public List<TenantNodeOptions> Children { get; set; } = [];

    /// <summary>Converts to the core record.</summary>
    public TenantNodeConfig ToConfig()
    {
        var children = new List<TenantNodeConfig>(Children.Count);
        foreach (var c in Children)
        {
            children.Add(c.ToConfig());
        }

        bool anyQuota = TokensPerMinute is not null || RequestsPerMinute is not null || MaxConcurrent is not null || Budget is not null || MaxQueued is not null || QueueTimeout is not null;
        return new TenantNodeConfig
        {
            Name = Name,
            Weight = Weight,
            Priority = Priority,
            Sheddable = Sheddable,
            Quota = anyQuota ? new TenantQuota { TokensPerMinute = TokensPerMinute, RequestsPerMinute = RequestsPerMinute, MaxConcurrent = MaxConcurrent, Budget = Budget, MaxQueued = MaxQueued, QueueTimeout = QueueTimeout } : null,
            AllowedModels = Models.Count == 0 ? null : Models,
            Children = children,
        };
    }
}

/// <summary>Shared state (section <c>Gateway:State</c>).</summary>
public sealed class StateOptions
{
    /// <summary>
    /// Redis address (<c>host:port[,password=..][,user=..][,db=N]</c> or any StackExchange.Redis configuration string, see <c>RedisConnection.ParseOptions</c>); empty keeps
    /// state in memory (one replica). Environment: <c>Gateway__State__Redis</c>.
    /// </summary>
    public string Redis { get; set; } = "";

    /// <summary>Key prefix in Redis.</summary>
    public string Prefix { get; set; } = "gw:";

    /// <summary>This replica's id in Redis (must differ between replicas); empty = host name + process id (+ an instance number when one process hosts several gateways).</summary>
    public string ReplicaId { get; set; } = "";

    /// <summary>
    /// With Redis: quotas (tokens per minute, concurrent requests, budget) are enforced cluster-wide in Redis. While
    /// Redis is unreachable, <c>Open</c> (default) admits on each replica's local ledger, <c>Closed</c> refuses requests
    /// of tenants with quotas (503 <c>quota_store_unavailable</c> + Retry-After).
    /// </summary>
    public Gateway.State.QuotaFailMode QuotaFailMode { get; set; } = Gateway.State.QuotaFailMode.Open;

    /// <summary>
    /// With Redis: how long a session → worker binding lives in Redis after its last turn (each turn refreshes it);
    /// every replica routes a bound session's next turn to the same worker (kv-aware's session affinity).
    /// </summary>
    public TimeSpan SessionTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// With Redis: how long a replica's slot grants and in-flight counts live in Redis without a sync (a dead replica's
    /// share heals away after this). Replicas sync every <c>Scheduling:TickInterval</c>.
    /// </summary>
    public TimeSpan SlotLeaseTtl { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// With Redis: slots of each worker a live replica keeps granted even while it has nothing to send there
    /// (<c>ReplicaSlotShare.Demand</c>), so the first request to reach an idle replica is released at once instead of
    /// waiting for the busy replicas' requests to finish and free a slot. These slots are not lent across replicas: a
    /// replica alone in the cluster uses a worker's slots less this many per other live replica. 0: the split is fully
    /// work-conserving.
    /// </summary>
    public int StandingSlots { get; set; } = Gateway.Core.Scheduling.ReplicaSlotShare.DefaultStandingSlots;
}
