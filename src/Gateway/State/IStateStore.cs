namespace Gateway.State;

/// <summary>
/// State the gateway replicas share: tenant service counters (fairness), quota windows and session → worker
/// bindings (per-worker in-flight counts and slot shares: <see cref="SharedSlots"/>). The in-memory store is the embedded default; the Redis store shares it across
/// replicas and keeps serving on local state while Redis is away (see docs/policies/hfair.md, "Shared state").
/// Thread-safe.
/// </summary>
public interface IStateStore : IAsyncDisposable
{
    /// <summary>"memory" or "redis".</summary>
    string Name { get; }

    /// <summary>True when the values read are cluster-wide (Redis reachable at the last sync); false when local only.</summary>
    bool IsShared { get; }

    /// <summary>Adds <paramref name="cost"/> to this replica's service counter of <paramref name="tenantPath"/> (no I/O).</summary>
    void AddService(string tenantPath, double cost);

    /// <summary>Cluster-wide service per tenant path as of the last sync, plus this replica's service since (no I/O).</summary>
    IReadOnlyDictionary<string, double> GetService();

    /// <summary>Adds <paramref name="amount"/> to window counter <paramref name="key"/> (created with <paramref name="expiry"/>); returns the new total.</summary>
    ValueTask<double> IncrementWindowAsync(string key, double amount, TimeSpan expiry, CancellationToken ct = default);

    /// <summary>The worker bound to a session, or null.</summary>
    ValueTask<string?> GetSessionAsync(string sessionId, CancellationToken ct = default);

    /// <summary>Binds a session to a worker for <paramref name="ttl"/>.</summary>
    ValueTask SetSessionAsync(string sessionId, string worker, TimeSpan ttl, CancellationToken ct = default);

    /// <summary>Publishes local changes and refreshes the cluster-wide snapshots (no-op for the in-memory store).</summary>
    ValueTask SyncAsync(CancellationToken ct = default);
}
