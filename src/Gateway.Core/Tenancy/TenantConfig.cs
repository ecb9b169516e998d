namespace Gateway.Core.Tenancy;

/// <summary>Priority class of a tenant node: interactive work is always dispatched before batch work.</summary>
public enum PriorityClass
{
    /// <summary>Latency-sensitive (band 0).</summary>
    Interactive = 0,

    /// <summary>Throughput work (band 1), dispatched only when no interactive request waits.</summary>
    Batch = 1,
}

/// <summary>Per-node limits. Every limit is optional (null = unlimited / inherited where noted).</summary>
public sealed record TenantQuota
{
    /// <summary>Tokens (prompt + output) per minute, sliding window.</summary>
    public double? TokensPerMinute { get; init; }

    /// <summary>Requests admitted per minute, sliding window (the same two-window approximation as tokens).</summary>
    public int? RequestsPerMinute { get; init; }

    /// <summary>Requests admitted and not finished (queued + in flight).</summary>
    public int? MaxConcurrent { get; init; }

    /// <summary>Total budget in effective cost units (w_in x uncached prompt + w_out x output tokens).</summary>
    public double? Budget { get; init; }

    /// <summary>Requests waiting in the gateway queue under this node.</summary>
    public int? MaxQueued { get; init; }

    /// <summary>Longest a request of this subtree may wait in the queue (nearest ancestor's value applies).</summary>
    public TimeSpan? QueueTimeout { get; init; }
}

/// <summary>One node of the configured tenant tree (org, team, API key). Immutable.</summary>
public sealed record TenantNodeConfig
{
    /// <summary>Path segment (no '/'), unique among siblings.</summary>
    public required string Name { get; init; }

    /// <summary>Share weight among siblings (default 1).</summary>
    public double Weight { get; init; } = 1.0;

    /// <summary>Priority class; null inherits the parent's (root default interactive).</summary>
    public PriorityClass? Priority { get; init; }

    /// <summary>Batch work of this subtree may be shed under overload; null inherits.</summary>
    public bool? Sheddable { get; init; }

    /// <summary>Limits of this node (apply to its whole subtree).</summary>
    public TenantQuota? Quota { get; init; }

    /// <summary>Models this subtree may use; null = no restriction at this level (ancestors' lists still apply).</summary>
    public IReadOnlyList<string>? AllowedModels { get; init; }

    /// <summary>API keys that authenticate as this node (normally on leaves). Stored hashed in the tree.</summary>
    public IReadOnlyList<string>? ApiKeys { get; init; }

    /// <summary>Child nodes.</summary>
    public IReadOnlyList<TenantNodeConfig> Children { get; init; } = [];
}

/// <summary>The whole tenant configuration: top-level nodes (orgs).</summary>
public sealed record TenantTreeConfig
{
    /// <summary>Top-level nodes.</summary>
    public IReadOnlyList<TenantNodeConfig> Tenants { get; init; } = [];
}
