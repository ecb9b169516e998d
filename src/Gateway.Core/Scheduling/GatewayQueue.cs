using Llm.Prompt.OpenAi;
using Gateway.Core.Tenancy;

namespace Gateway.Core.Scheduling;

/// <summary>Overload knobs of the gateway-held queue.</summary>
public sealed record OverloadOptions
{
    /// <summary>Requests the gateway holds in total.</summary>
    public int MaxQueued { get; init; } = 10_000;

    /// <summary>Batch requests are refused once the queue holds this fraction of <see cref="MaxQueued"/> (batch shed first).</summary>
    public double BatchAdmitFraction { get; init; } = 0.8;

    /// <summary>Per tenant path cap when the tree sets no <see cref="TenantQuota.MaxQueued"/> on the path.</summary>
    public int DefaultTenantMaxQueued { get; init; } = 1_000;

    /// <summary>Queue timeout when the tree sets none.</summary>
    public TimeSpan DefaultQueueTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Retry-After sent with queue-full, shed and timeout rejections.</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromSeconds(1);
}

/// <summary>Why a request was refused (or left the queue unserved).</summary>
public enum AdmissionOutcome
{
    /// <summary>Queued.</summary>
    Admitted = 0,

    /// <summary>The gateway queue is full (or too full for batch work).</summary>
    QueueFull,

    /// <summary>The tenant's queue cap is reached.</summary>
    TenantQueueFull,

    /// <summary>Tokens-per-minute quota.</summary>
    RateLimited,

    /// <summary>Concurrent-request quota.</summary>
    ConcurrencyLimited,

    /// <summary>Budget exhausted.</summary>
    BudgetExhausted,

    /// <summary>The model is not on the tenant's allow-list.</summary>
    ModelNotAllowed,

    /// <summary>A queued batch request was shed to make room for interactive work.</summary>
    Shed,

    /// <summary>Waited longer than the queue timeout.</summary>
    TimedOut,

    /// <summary>The replica-shared quota store is unreachable and quotas fail closed.</summary>
    QuotaStoreUnavailable,
}

/// <summary>Outcome of admission, with the Retry-After the host should send.</summary>
public readonly record struct AdmissionResult(AdmissionOutcome Outcome, TimeSpan? RetryAfter = null, string? Message = null)
{
    /// <summary>True when the request was queued.</summary>
    public bool Admitted => Outcome == AdmissionOutcome.Admitted;

    /// <summary>Retry-After header value in whole seconds (at least 1), or null.</summary>
    public int? RetryAfterSeconds => RetryAfter is { } t ? (int)Math.Max(1, Math.Ceiling(t.TotalSeconds)) : null;

    /// <summary>The OpenAI-shaped error the host returns (429 for overload and quotas, 403 for allow-lists).</summary>
    public OpenAiError ToError() => Outcome switch
    {
        AdmissionOutcome.Admitted => throw new InvalidOperationException("admitted requests have no error"),
        AdmissionOutcome.ModelNotAllowed => new OpenAiError(403, Message ?? "model not allowed for this key", "invalid_request_error", "model", "model_not_allowed"),
        AdmissionOutcome.BudgetExhausted => new OpenAiError(429, Message ?? "budget exhausted", "insufficient_quota", null, "insufficient_quota"),
        AdmissionOutcome.RateLimited => new OpenAiError(429, Message ?? "token rate limit reached", "tokens", null, "rate_limit_exceeded"),
        AdmissionOutcome.QuotaStoreUnavailable => new OpenAiError(503, Message ?? "quota state is unavailable", "server_error", null, "quota_store_unavailable"),
        _ => new OpenAiError(429, Message ?? "too many requests", "requests", null, "rate_limit_exceeded"),
    };
}

/// <summary>
/// The gateway-held queue: admission (allow-lists, per-tenant caps, quotas reserved on admit), the fair scheduler,
/// overload policy (batch refused first once the queue passes <see cref="OverloadOptions.BatchAdmitFraction"/>,
/// queued sheddable batch shed newest-first when interactive work arrives at a full queue), queue timeouts, and
/// settlement of quotas and service on completion or cancel. Not thread-safe: the host serialises calls.
/// </summary>
public sealed class GatewayQueue : IDispatchQueue
{
    private static readonly IComparer<QueuedRequest> ById = Comparer<QueuedRequest>.Create(static (a, b) => a.Id.CompareTo(b.Id));

    private readonly IRequestScheduler _scheduler;
    private readonly QuotaLedger _quotas;
    private readonly OverloadOptions _options;
    private readonly TimeProvider _time;
    private readonly CostModel _cost;
    private const int MaxIdlePrefixes = 1024;
    private readonly Dictionary<string, int> _queuedByPath = new(StringComparer.Ordinal);
    // Deadlines of admitted requests, removed lazily when they fall due (a request dispatched before its deadline stays
    // until then); after a burst the heap gives its spare capacity back (see ExpireDue).
    private readonly PriorityQueue<QueuedRequest, (long Deadline, long Id)> _deadlines = new();
    private Collections.PeakWatermark _deadlinesPeak;
    private readonly SortedSet<QueuedRequest> _sheddable = new(ById);
    private TenantTree _tree;

    /// <summary>Creates the queue.</summary>
    public GatewayQueue(IRequestScheduler scheduler, TenantTree tree, QuotaLedger quotas, OverloadOptions? options = null, TimeProvider? time = null, CostModel? cost = null)
    {
        _scheduler = scheduler ?? throw new ArgumentNullException(nameof(scheduler));
        _tree = tree ?? throw new ArgumentNullException(nameof(tree));
        _quotas = quotas ?? throw new ArgumentNullException(nameof(quotas));
        _options = options ?? new OverloadOptions();
        _time = time ?? TimeProvider.System;
        _cost = cost ?? CostModel.Default;
        _scheduler.UpdateWeights(_tree.WeightOf);
    }

    /// <summary>The scheduler deciding the order.</summary>
    public IRequestScheduler Scheduler => _scheduler;

    /// <summary>The current tenant tree.</summary>
    public TenantTree Tree => _tree;

    /// <summary>Requests waiting.</summary>
    public int Count => _scheduler.Count;

    /// <summary>Requests waiting under <paramref name="path"/> (any ancestor path works).</summary>
    public int QueuedUnder(string path) => _queuedByPath.TryGetValue(path, out var n) ? n : 0;

    /// <summary>Swaps in a reloaded tree; queued and in-flight requests keep their state (keyed by path).</summary>
    public void Reload(TenantTree tree)
    {
        _tree = tree ?? throw new ArgumentNullException(nameof(tree));
        _scheduler.UpdateWeights(tree.WeightOf);
    }

    /// <summary>
    /// Admits or refuses <paramref name="request"/>. Requests shed to make room are appended to
    /// <paramref name="shed"/> (the host answers them 429 with Retry-After).
    /// </summary>
    public AdmissionResult TryEnqueue(QueuedRequest request, List<QueuedRequest>? shed = null)
    {
        ArgumentNullException.ThrowIfNull(request);
        var node = _tree.Find(request.TenantPath);
        if (request.Model is { } model && node is not null && !node.IsModelAllowed(model))
        {
            return new(AdmissionOutcome.ModelNotAllowed, null, $"The model '{model}' is not allowed for this key.");
        }

        var isBatch = request.PriorityClass > 0;
        if (isBatch && _scheduler.Count >= _options.MaxQueued * _options.BatchAdmitFraction)
        {
            return new(AdmissionOutcome.QueueFull, _options.RetryAfter, "The gateway is overloaded; batch work is refused first. Retry later.");
        }

        if (!isBatch && _scheduler.Count >= _options.MaxQueued && _sheddable.Count == 0)
        {
            return new(AdmissionOutcome.QueueFull, _options.RetryAfter, "The gateway queue is full. Retry later.");
        }

        if (!TenantHasRoom(request.TenantPath, node))
        {
            return new(AdmissionOutcome.TenantQueueFull, _options.RetryAfter, "Too many queued requests for this tenant. Retry later.");
        }

        QuotaReservation? reservation = null;
        if (node is not null)
        {
            var (tokens, cost) = EstimateOf(request);
            if (!_quotas.TryReserve(node, tokens, cost, out reservation, out var limit, out var retry, out var where))
            {
                return QuotaRefusal(limit, retry, where);
            }
        }

        // Interactive work at a full queue: shed the newest sheddable batch request.
        while (!isBatch && _scheduler.Count >= _options.MaxQueued && _sheddable.Count > 0)
        {
            var victim = _sheddable.Max!;
            if (RemoveQueued(victim))
            {
                shed?.Add(victim);
            }
        }

        var timeout = node?.QueueTimeout ?? _options.DefaultQueueTimeout;
        var now = _time.GetTimestamp();
        var deadline = now + (long)(timeout.TotalSeconds * _time.TimestampFrequency);
        request.AdmissionState = new Admission(reservation, deadline);
        _scheduler.Enqueue(request);
        ForEachPrefix(request.TenantPath, +1);
        _deadlines.Enqueue(request, (deadline, request.Id));
        _deadlinesPeak.Observe(_deadlines.Count);
        if (isBatch && request.Sheddable)
        {
            _sheddable.Add(request);
        }

        return new(AdmissionOutcome.Admitted);
    }

    /// <summary>Quota usage a request is admitted with: tokens (prompt + expected output) and estimated cost.</summary>
    public (double Tokens, double Cost) EstimateOf(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ((double)Math.Max(0, request.PromptTokens) + Math.Max(0, request.ExpectedOutputTokens),
            _cost.Prefill(request.PromptTokens, request.ExpectedCachedTokens) + _cost.Output(request.ExpectedOutputTokens));
    }

    /// <summary>Quota usage a request settles with: tokens (prompt + actual output) and actual cost.</summary>
    public (double Tokens, double Cost) UsageOf(QueuedRequest request, int cachedPromptTokens, int outputTokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        return ((double)Math.Max(0, request.PromptTokens) + Math.Max(0, outputTokens),
            _cost.Prefill(request.PromptTokens, cachedPromptTokens) + _cost.Output(outputTokens));
    }

    /// <summary>The refusal for a quota limit (local ledger or the replica-shared one).</summary>
    public static AdmissionResult QuotaRefusal(QuotaLimit limit, TimeSpan? retryAfter, string? path) => limit switch
    {
        QuotaLimit.Budget => new(AdmissionOutcome.BudgetExhausted, null, $"Budget of '{path}' is exhausted."),
        QuotaLimit.Concurrency => new(AdmissionOutcome.ConcurrencyLimited, retryAfter, $"Concurrent request limit of '{path}' reached."),
        QuotaLimit.RequestsPerMinute => new(AdmissionOutcome.RateLimited, retryAfter, $"Requests-per-minute limit of '{path}' reached."),
        _ => new(AdmissionOutcome.RateLimited, retryAfter, $"Tokens-per-minute limit of '{path}' reached."),
    };

    /// <summary>Next request in fair order (expired requests are dropped first via <see cref="ExpireDue"/>).</summary>
    public QueuedRequest? Dequeue() => OnDequeued(_scheduler.Dequeue());

    /// <summary>Next request with locality (see <see cref="IRequestScheduler.Dequeue(Func{QueuedRequest, double})"/>).</summary>
    public QueuedRequest? Dequeue(Func<QueuedRequest, double> affinity) => OnDequeued(_scheduler.Dequeue(affinity));

    /// <summary>
    /// Next request for a dispatch while <paramref name="free"/> slots are free, this one included
    /// (<see cref="ReservedCapacity.Next"/>: the last reserved slots only for tenants not over their share; with
    /// <paramref name="pick"/> and <paramref name="worker"/>, the locality pick for the worker that freed capacity).
    /// </summary>
    public QueuedRequest? DequeueFor(ReservedCapacity reserve, int free, LocalityPick? pick = null, Gateway.Core.Routing.WorkerInfo? worker = null)
    {
        ArgumentNullException.ThrowIfNull(reserve);
        return OnDequeued(reserve.Next(_scheduler, free, pick, worker));
    }

    /// <summary>
    /// With no slot free: a within-share request that takes back a slot <paramref name="reserve"/> lent to an over-share
    /// one (<see cref="ReservedCapacity.Reclaim"/>), or null.
    /// </summary>
    public QueuedRequest? ReclaimFor(ReservedCapacity reserve)
    {
        ArgumentNullException.ThrowIfNull(reserve);
        return OnDequeued(reserve.Reclaim(_scheduler, out _));
    }

    /// <summary>With no slot free on a gateway replica: an urgent request released beyond its limit (<see cref="ReservedCapacity.Overdraw"/>), or null.</summary>
    public QueuedRequest? OverdrawFor(ReservedCapacity reserve)
    {
        ArgumentNullException.ThrowIfNull(reserve);
        return OnDequeued(reserve.Overdraw(_scheduler));
    }

    /// <summary>Next request for <paramref name="worker"/>, which freed capacity (see <see cref="LocalityPick"/>).</summary>
    public QueuedRequest? DequeueFor(LocalityPick pick, Gateway.Core.Routing.WorkerInfo worker)
    {
        ArgumentNullException.ThrowIfNull(pick);
        return OnDequeued(pick.Next(_scheduler, worker));
    }

    /// <summary>Slots the deadline heap holds now (its array's capacity, for the memory tests).</summary>
    internal int DeadlineCapacity => _deadlines.EnsureCapacity(0);

    /// <summary>Removes every request whose queue timeout has passed; appends them to <paramref name="expired"/>.</summary>
    public int ExpireDue(List<QueuedRequest> expired)
    {
        ArgumentNullException.ThrowIfNull(expired);
        var now = _time.GetTimestamp();
        var n = 0;
        while (_deadlines.TryPeek(out var r, out var key) && key.Deadline <= now)
        {
            _deadlines.Dequeue();
            if (r.AdmissionState is Admission { Queued: true } && RemoveQueued(r))
            {
                expired.Add(r);
                n++;
            }
        }

        if (_deadlinesPeak.TrimNow(_deadlines.Count))
        {
            _deadlines.TrimExcess();
        }

        return n;
    }

    /// <summary>Reports <paramref name="tokens"/> newly streamed output tokens of a dispatched request.</summary>
    public void OnOutputTokens(QueuedRequest request, int tokens) => _scheduler.ChargeOutput(request, tokens);

    /// <summary>Settles a dispatched request (completion or cancel) with what it actually consumed.</summary>
    public void Complete(QueuedRequest request, int cachedPromptTokens, int outputTokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        _scheduler.Complete(request, cachedPromptTokens, outputTokens);
        if (request.AdmissionState is Admission { Reservation: { } res })
        {
            var (tokens, cost) = UsageOf(request, cachedPromptTokens, outputTokens);
            _quotas.Settle(res, tokens, cost);
        }

        request.AdmissionState = null;
    }

    /// <summary>Removes a still-queued request (client went away); releases its reservation. False if not queued.</summary>
    public bool Cancel(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.AdmissionState is Admission { Queued: true } && RemoveQueued(request);
    }

    private QueuedRequest? OnDequeued(QueuedRequest? r)
    {
        if (r?.AdmissionState is Admission a)
        {
            a.Queued = false;
            ForEachPrefix(r.TenantPath, -1);
            if (r.PriorityClass > 0 && r.Sheddable)
            {
                _sheddable.Remove(r);
            }
        }

        return r;
    }

    private bool RemoveQueued(QueuedRequest r)
    {
        if (!_scheduler.Remove(r))
        {
            return false;
        }

        var a = (Admission)r.AdmissionState!;
        a.Queued = false;
        ForEachPrefix(r.TenantPath, -1);
        _sheddable.Remove(r);
        if (a.Reservation is { } res)
        {
            _quotas.Settle(res, 0, 0); // never served: release the whole reservation
        }

        r.AdmissionState = null;
        return true;
    }

    private bool TenantHasRoom(string path, TenantNode? node)
    {
        var configured = false;
        for (var n = node; n is not null; n = n.Parent)
        {
            if (n.Config.Quota?.MaxQueued is { } max)
            {
                configured = true;
                if (QueuedUnder(n.Path) >= max)
                {
                    return false;
                }
            }
        }

        return configured || QueuedUnder(path.Trim('/')) < _options.DefaultTenantMaxQueued;
    }

    // Counts by span (the dictionary's alternate lookup), and a count that falls to zero is kept (up to MaxIdlePrefixes
    // paths): a prefix is made a string once, not at every request that finds the queue empty.
    private void ForEachPrefix(string tenantPath, int delta)
    {
        var counts = _queuedByPath.GetAlternateLookup<ReadOnlySpan<char>>();
        var path = tenantPath.AsSpan().Trim('/');
        while (true)
        {
            var v = (counts.TryGetValue(path, out var n) ? n : 0) + delta;
            if (v <= 0 && _queuedByPath.Count > MaxIdlePrefixes) { counts.Remove(path); } else { counts[path] = Math.Max(0, v); }
            var slash = path.LastIndexOf('/');
            if (slash < 0)
            {
                return;
            }

            path = path[..slash];
        }
    }

    private sealed class Admission(QuotaReservation? reservation, long deadline)
    {
        public QuotaReservation? Reservation { get; } = reservation;
        public long Deadline { get; } = deadline;
        public bool Queued { get; set; } = true;
    }
}
