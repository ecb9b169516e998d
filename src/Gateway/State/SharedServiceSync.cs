using Gateway.Core.Scheduling;

namespace Gateway.State;

/// <summary>
/// Makes a replica's fair scheduler see the whole cluster's service. Each <see cref="SyncAsync"/>:
/// (1) publishes the service this replica charged locally to each tracked tenant path (its own scheduler's
/// <see cref="IServiceAccounting.ServiceOf"/> minus what was fed in from other replicas),
/// (2) syncs the store, and (3) charges the scheduler with the service other replicas delivered since the last sync
/// (cluster total − own total − already applied), via <see cref="IRequestScheduler.Charge"/>. Tracked paths must be
/// the tenant paths requests carry (keys), never one another's prefixes, or service would count twice.
/// While the store is local-only (Redis away), step 3 sees no new remote service: each replica is fair over its own
/// traffic; when Redis returns, the other replicas' service of the outage arrives as one charge.
/// Call from the scheduler's thread (the scheduler is not thread-safe).
/// </summary>
public sealed class SharedServiceSync
{
    private readonly IRequestScheduler _scheduler;
    private readonly IServiceAccounting _accounting;
    private readonly IStateStore _store;
    private readonly Dictionary<string, PathState> _paths = new(StringComparer.Ordinal);

    /// <summary>Creates the sync for a scheduler that accounts service per path.</summary>
    public SharedServiceSync(IRequestScheduler scheduler, IStateStore store)
    {
        _scheduler = scheduler ?? throw new ArgumentNullException(nameof(scheduler));
        _accounting = scheduler as IServiceAccounting ?? throw new ArgumentException($"scheduler '{scheduler.Name}' does not account service per path", nameof(scheduler));
        _store = store ?? throw new ArgumentNullException(nameof(store));
    }

    /// <summary>Service received from other replicas and charged to the local scheduler, per path.</summary>
    public double RemoteServiceOf(string tenantPath) => _paths.TryGetValue(tenantPath, out var s) ? s.RemoteApplied : 0;

    /// <summary>Starts sharing <paramref name="tenantPath"/> (idempotent).</summary>
    public void Track(string tenantPath)
    {
        ArgumentNullException.ThrowIfNull(tenantPath);
        _paths.TryAdd(tenantPath, new PathState());
    }

    /// <summary>Publishes local service and applies other replicas' service.</summary>
    public async ValueTask SyncAsync(CancellationToken ct = default)
    {
        Publish();
        await _store.SyncAsync(ct).ConfigureAwait(false);
        Apply();
    }

    /// <summary>Step 2 alone: syncs the store (no scheduler access, so it may run outside the scheduler's lock).</summary>
    public ValueTask SyncStoreAsync(CancellationToken ct = default) => _store.SyncAsync(ct);

    /// <summary>Step 1 alone (no I/O).</summary>
    public void Publish()
    {
        foreach (var (path, s) in _paths)
        {
            var own = _accounting.ServiceOf(path) - s.RemoteApplied;
            var delta = own - s.OwnPublished;
            if (delta != 0)
            {
                _store.AddService(path, delta);
                s.OwnPublished = own;
            }
        }
    }

    /// <summary>Step 3 alone (no I/O): charges other replicas' new service from the store's last snapshot.</summary>
    public void Apply()
    {
        if (!_store.IsShared)
        {
            return;
        }

        var cluster = _store.GetService();
        foreach (var (path, s) in _paths)
        {
            if (!cluster.TryGetValue(path, out var total))
            {
                continue;
            }

            var remote = total - s.OwnPublished;
            var toApply = remote - s.RemoteApplied;
            if (toApply > 1e-9)
            {
                _scheduler.Charge(path, toApply);
                s.RemoteApplied += toApply;
            }
        }
    }

    private sealed class PathState
    {
        public double OwnPublished { get; set; }
        public double RemoteApplied { get; set; }
    }
}
