using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Gateway.State;
using Gateway.Telemetry;

namespace Gateway.Scheduling;

/// <summary>Knobs of <see cref="FairDispatcher"/>.</summary>
public sealed record FairDispatcherOptions
{
    /// <summary>Requests the gateway lets run at once when the host gives no capacity function.</summary>
    public int MaxInFlight { get; init; } = 64;

    /// <summary>How often timeouts are expired and shared service is synced.</summary>
    public TimeSpan TickInterval { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Replicas (other replicas' in-flight counts given), no slot free and none lent: release a request of a tenant under its share while another tenant has work beyond the slot grant (<see cref="ReservedCapacity.Overdraw"/>).</summary>
    public bool Overdraw { get; init; } = true;
}

/// <summary>
/// The gateway-held queue in the request path: <see cref="EnterAsync"/> admits a request (or refuses it with 429),
/// waits until the fair scheduler releases it because capacity is free, and returns a ticket; the ticket reports
/// streamed tokens and completion. A background tick expires queue timeouts (429) and syncs shared service when a
/// <see cref="SharedServiceSync"/> is given. Per-tenant metrics (tenant label = the host's bounded org/team label,
/// never a key): <c>gateway.fair.service</c>, <c>gateway.fair.rejections</c>, <c>gateway.fair.queued</c>.
/// Thread-safe: one lock around the (single-threaded) queue.
/// </summary>
public sealed class FairDispatcher : IAsyncDisposable
{
    private readonly object _lock = new();
    private readonly GatewayQueue _queue;
    private readonly Func<int>? _freeCapacity;
    private readonly FairDispatcherOptions _options;
    private readonly TimeProvider _time;
    private readonly SharedServiceSync? _sync;
    private readonly LocalityPick? _locality;
    private readonly ReservedCapacity _reserve;
    private readonly SharedQuotaLedger? _sharedQuota;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, SharedQuotaReservation> _shared = new();
    private readonly Func<string, string> _label;
    private readonly Prometheus.Counter? _service;
    private readonly Prometheus.Counter? _rejections;
    private readonly Dictionary<long, TaskCompletionSource<DispatchResult>> _waiting = [];
    private readonly List<QueuedRequest> _shed = []; // victims of one admission, only used under the lock
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _ticker;
    private readonly Task? _kicker;
    private readonly Func<CancellationToken, ValueTask>? _shareCapacity;
    private readonly Func<int>? _remoteInFlight;
    private readonly SemaphoreSlim _kick = new(0, 1);
    private readonly SemaphoreSlim _shareGate = new(1, 1);
    private readonly DispatchDriver _driver;
    private readonly PumpTarget _pump;
    private int _inFlight;

    /// <summary>
    /// Creates the dispatcher. <paramref name="freeCapacity"/> returns how many more requests the fleet can take now
    /// (from worker saturation estimates); null uses <see cref="FairDispatcherOptions.MaxInFlight"/>. Call
    /// <see cref="Pump"/> whenever the fleet's capacity grows for reasons the dispatcher does not see.
    /// </summary>
    public FairDispatcher(GatewayQueue queue, Func<int>? freeCapacity = null, FairDispatcherOptions? options = null,
        TimeProvider? time = null, SharedServiceSync? sync = null, GatewayMetrics? metrics = null, Func<string, string>? tenantLabel = null,
        LocalityPick? locality = null, SharedQuotaLedger? sharedQuota = null, ReservedCapacity? reserve = null,
        Func<CancellationToken, ValueTask>? shareCapacity = null, Func<int>? remoteInFlight = null)
    {
        _shareCapacity = shareCapacity;
        _remoteInFlight = remoteInFlight;
        _locality = locality;
        _reserve = reserve ?? new ReservedCapacity(0);
        _sharedQuota = sharedQuota;
        _queue = queue ?? throw new ArgumentNullException(nameof(queue));
        _freeCapacity = freeCapacity;
        _options = options ?? new FairDispatcherOptions();
        _time = time ?? TimeProvider.System;
        _sync = sync;
        _label = tenantLabel ?? DefaultLabel;
        // One gateway keeps the simulator's rule (reclaim lent slots only); replicas also overdraw their slot grant.
        _driver = new DispatchDriver(queue, _reserve, locality, _options.Overdraw && remoteInFlight is not null);
        _pump = new PumpTarget(this);
        if (metrics is not null)
        {
            var f = metrics.Factory;
            _service = f.CreateCounter("gateway_fair_service_total", "Effective token cost served per tenant (org/team).", ["tenant"]);
            _rejections = f.CreateCounter("gateway_fair_rejections_total", "Requests refused or dropped by the fair queue, by tenant and reason.", ["tenant", "reason"]);
            var queued = new ObservedGauge(f.CreateGauge("gateway_fair_queued", "Requests waiting in the fair queue per top-level tenant.", ["tenant"]));
            metrics.OnCollect(() =>
            {
                lock (_lock)
                {
                    queued.Update(_queue.Tree.Roots, r => _label(r.Path), r => _queue.QueuedUnder(r.Path));
                }
            });
            if (queue.Scheduler is HierarchicalFairScheduler hfair)
            {
                // Locality within the lag bound, observable next to the bound (no labels).
                var picks = f.CreateCounter("gateway_fair_locality_picks_total", "Dispatches made with the locality pick (a worker freed a slot).");
                var reorders = f.CreateCounter("gateway_fair_locality_reorders_total", "Locality picks that served another request than strict fair order would have.");
                var maxLag = f.CreateGauge("gateway_fair_locality_max_lag", "Largest lag (cost units) seen at a locality pick; never above the configured lag bound.");
                // Reserved slots (no labels): dispatches into them, and how often one was left free for a within-share tenant.
                var reservePicks = f.CreateCounter("gateway_fair_reserve_picks_total", "Dispatches that took one of the slots reserved for tenants not over their in-flight share.");
                var reserveLent = f.CreateCounter("gateway_fair_reserve_lent_total", "Releases that borrowed a reserved slot because no within-share request was queued.");
                var reserveReclaimed = f.CreateCounter("gateway_fair_reserve_reclaimed_total", "Within-share requests released beyond capacity by taking back a lent slot.");
                var reserveOverdrawn = f.CreateCounter("gateway_fair_reserve_overdrawn_total", "Urgent requests a gateway replica released beyond its slot limit (replicas over Redis).");
                metrics.OnCollect(() =>
                {
                    lock (_lock)
                    {
                        picks.IncTo(hfair.LocalityPicks);
                        reorders.IncTo(hfair.LocalityReorders);
                        maxLag.Set(hfair.MaxDispatchLag);
                        reservePicks.IncTo(_reserve.ReservedPicks);
                        reserveLent.IncTo(_reserve.Lent);
                        reserveReclaimed.IncTo(_reserve.Reclaimed);
                        reserveOverdrawn.IncTo(_reserve.Overdrawn);
                    }
                });
            }
        }

        _ticker = Task.Run(TickLoopAsync);
        _kicker = shareCapacity is null ? null : Task.Run(KickLoopAsync);
    }

    /// <summary>Requests waiting.</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Requests dispatched and not completed.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>
    /// Swaps in a reloaded tenant tree under the queue's lock (see <see cref="GatewayQueue.Reload"/>);
    /// <paramref name="underLock"/> runs in the same critical section (state the tick loop reads under this lock,
    /// e.g. <see cref="SharedServiceSync.Track"/>), then the queue is pumped (a raised cap or weight may release work).
    /// </summary>
    public void Reload(Gateway.Core.Tenancy.TenantTree tree, Action? underLock = null)
    {
        ArgumentNullException.ThrowIfNull(tree);
        lock (_lock)
        {
            _queue.Reload(tree);
            underLock?.Invoke();
            PumpLocked();
        }
    }

    /// <summary>
    /// Admits <paramref name="request"/> and waits for its turn (cancel = client went away). A request released by the
    /// pump of its own admission (a slot was free and nobody ahead of it) returns at once: no cancellation hook, no
    /// continuation.
    /// </summary>
    public async Task<DispatchResult> EnterAsync(QueuedRequest request, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(request);
        var tcs = new TaskCompletionSource<DispatchResult>(TaskCreationOptions.RunContinuationsAsynchronously);
        SharedQuotaReservation? shared = null;
        if (_sharedQuota is not null && _queue.Tree.Find(request.TenantPath) is { } node)
        {
            // Replica-shared quotas first (one atomic Redis script); the local ledger below still applies.
            var (tokens, cost) = _queue.EstimateOf(request);
            var (reservation, refusal) = await _sharedQuota.TryReserveAsync(node, tokens, cost, ct).ConfigureAwait(false);
            if (refusal is { } r)
            {
                Reject(request.TenantPath, r.Outcome);
                return DispatchResult.Refused(r);
            }

            shared = reservation;
        }

        lock (_lock)
        {
            var shed = _shed;
            shed.Clear();
            var admission = _queue.TryEnqueue(request, shed);
            if (!admission.Admitted)
            {
                Reject(request.TenantPath, admission.Outcome);
                ReleaseShared(shared);
                return DispatchResult.Refused(admission);
            }

            if (shared is not null)
            {
                _shared[request.Id] = shared;
            }

            _waiting[request.Id] = tcs;
            foreach (var victim in shed)
            {
                Refuse(victim, AdmissionOutcome.Shed);
            }

            shed.Clear();
            PumpLocked();
        }

        if (tcs.Task.IsCompleted)
        {
            return tcs.Task.Result; // released by its own admission's pump
        }

        using var reg = OnCancel(request, tcs, ct);
        return await tcs.Task.ConfigureAwait(false);
    }

    // Its own method so that the closure is allocated only for a request that waits, not at every EnterAsync.
    private CancellationTokenRegistration OnCancel(QueuedRequest request, TaskCompletionSource<DispatchResult> tcs, CancellationToken ct) =>
        ct.Register(() =>
        {
            lock (_lock)
            {
                if (_queue.Cancel(request))
                {
                    _waiting.Remove(request.Id);
                    SettleShared(request.Id, 0, 0);
                    tcs.TrySetCanceled(ct);
                }
            }
        });

    /// <summary>Dispatches waiting requests while there is capacity.</summary>
    public void Pump()
    {
        lock (_lock)
        {
            PumpLocked();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _ticker.ConfigureAwait(false);
        if (_kicker is not null)
        {
            await _kicker.ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    internal void OnTokens(QueuedRequest r, int tokens)
    {
        lock (_lock)
        {
            _queue.OnOutputTokens(r, tokens);
        }
    }

    internal void OnComplete(QueuedRequest r, int cached, int output, WorkerInfo? worker)
    {
        lock (_lock)
        {
            _queue.Complete(r, cached, output);
            _reserve.Complete(r);
            var (tokens, cost) = _queue.UsageOf(r, cached, output);
            SettleShared(r.Id, tokens, cost);
            _service?.WithLabels([_label(r.TenantPath)]).Inc(Math.Max(0, r.ChargedCost));
            Interlocked.Decrement(ref _inFlight);
            PumpLocked(worker);
        }
    }

    /// <summary>
    /// Releases requests while there is capacity (<see cref="DispatchDriver"/>, the loop the simulator runs too). The
    /// first pick after a request finished on <paramref name="freed"/> is made for that worker (locality within hfair's
    /// lag bound); the others in plain fair order. The last <see cref="ReservedCapacity.Reserve"/> free slots go first to
    /// tenants not over their in-flight share, and are lent to the others when none of them waits; with no slot free, a
    /// within-share request takes a lent slot back (<see cref="ReservedCapacity.Reclaim"/>) and is released at once with
    /// the urgency hint.
    /// </summary>
    private void PumpLocked(WorkerInfo? freed = null)
    {
        if (_remoteInFlight is not null && _queue.Scheduler is HierarchicalFairScheduler hfair)
        {
            hfair.SetRemoteInFlight(_remoteInFlight()); // other replicas' work counts in shares and contention
        }

        _pump.Begin(freed, _time.GetTimestamp());
        int free = _driver.Pump(_pump);

        if (_shareCapacity is not null && _queue.Count > 0 && free <= 0 && _kick.CurrentCount == 0)
        {
            // Requests wait and this replica's share of the fleet is used up: ask for more now, not at the next tick.
            try
            {
                _kick.Release();
            }
            catch (SemaphoreFullException)
            {
            }
        }
    }

    /// <summary>Free slots now: the host's capacity function, or <see cref="FairDispatcherOptions.MaxInFlight"/> less those in flight.</summary>
    private int FreeNow() => _freeCapacity is null ? _options.MaxInFlight - _inFlight : _freeCapacity();

    private void Release(QueuedRequest r, long now)
    {
        Interlocked.Increment(ref _inFlight);
        if (_waiting.Remove(r.Id, out var tcs))
        {
            tcs.TrySetResult(DispatchResult.Go(new DispatchTicket(this, r, _time.GetElapsedTime(r.EnqueuedTimestamp, now), _reserve.IsUrgent(_queue.Scheduler, r))));
        }
    }

    private void SettleShared(long id, double tokens, double cost)
    {
        if (_sharedQuota is not null && _shared.TryRemove(id, out var res))
        {
            _ = _sharedQuota.SettleAsync(res, tokens, cost); // best effort, off the lock; failures are documented
        }
    }

    private void ReleaseShared(SharedQuotaReservation? res)
    {
        if (res is not null)
        {
            _ = _sharedQuota!.SettleAsync(res, 0, 0);
        }
    }

    private void Refuse(QueuedRequest r, AdmissionOutcome why)
    {
        Reject(r.TenantPath, why);
        SettleShared(r.Id, 0, 0);
        if (_waiting.Remove(r.Id, out var tcs))
        {
            tcs.TrySetResult(DispatchResult.Refused(new AdmissionResult(why, TimeSpan.FromSeconds(1),
                why == AdmissionOutcome.TimedOut ? "The request waited too long in the gateway queue. Retry later." : "The request was shed under overload. Retry later.")));
        }
    }

    private void Reject(string tenantPath, AdmissionOutcome why) =>
        _rejections?.WithLabels(_label(tenantPath), why.ToString()).Inc();

    private async Task TickLoopAsync()
    {
        var expired = new List<QueuedRequest>();
        using var timer = new PeriodicTimer(_options.TickInterval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false))
            {
                lock (_lock)
                {
                    expired.Clear();
                    _queue.ExpireDue(expired);
                    foreach (var r in expired)
                    {
                        Refuse(r, AdmissionOutcome.TimedOut);
                    }

                    _sync?.Publish();
                }

                if (_sync is not null)
                {
                    try
                    {
                        await _sync.SyncStoreAsync(_stop.Token).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
                    {
                        // local state keeps serving; the store retries on the next tick
                    }

                    lock (_lock)
                    {
                        _sync.Apply();
                    }
                }

                await ShareCapacityAsync().ConfigureAwait(false);
                Pump();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task KickLoopAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                await _kick.WaitAsync(_stop.Token).ConfigureAwait(false);
                await ShareCapacityAsync().ConfigureAwait(false);
                Pump();
                // At most one out-of-tick share sync per 5 ms, however often completions pump a full queue.
                await Task.Delay(TimeSpan.FromMilliseconds(5), _time, _stop.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async Task ShareCapacityAsync()
    {
        if (_shareCapacity is null)
        {
            return;
        }

        await _shareGate.WaitAsync(_stop.Token).ConfigureAwait(false);
        try
        {
            await _shareCapacity(_stop.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
        {
            // the share keeps its fallback; the next tick retries
        }
        finally
        {
            _shareGate.Release();
        }
    }

    private static string DefaultLabel(string path)
    {
        // org/team only: the key level (and sessions) never become label values.
        var first = path.IndexOf('/', StringComparison.Ordinal);
        if (first < 0)
        {
            return path;
        }

        var second = path.IndexOf('/', first + 1);
        return second < 0 ? path[..first] : path[..second];
    }

    /// <summary>
    /// The gateway's side of a pump: capacity is a slot count (the host's estimate, never more than one less after each
    /// release than before it, whatever the estimate says now), the first pick is made for the worker that freed a
    /// slot, and a release wakes the waiting request (which routes and forwards itself).
    /// </summary>
    private sealed class PumpTarget(FairDispatcher owner) : IDispatchTarget
    {
        private WorkerInfo? _freed;
        private long _now;
        private int _free;

        public void Begin(WorkerInfo? freed, long now)
        {
            _freed = freed;
            _now = now;
        }

        public DispatchCapacity Capacity(bool first)
        {
            int now = owner.FreeNow();
            _free = first ? now : Math.Min(_free - 1, now);
            return new DispatchCapacity(_free, first ? _freed : null);
        }

        public void Release(QueuedRequest request, bool reclaimed) => owner.Release(request, _now);
    }
}
