using Prometheus;

namespace Gateway.Telemetry;

/// <summary>Circuit-breaker state of a worker as exported by <c>gateway_worker_circuit_state</c>.</summary>
public enum CircuitState
{
    /// <summary>Traffic flows.</summary>
    Closed = 0,
    /// <summary>Trial requests only.</summary>
    HalfOpen = 1,
    /// <summary>No traffic.</summary>
    Open = 2,
}

/// <summary>One worker's load as the host sees it at scrape time (see <see cref="GatewayMetrics.SetWorkerSource"/>).</summary>
/// <param name="Worker">Worker name (pod name or configured id): bounded by the fleet size.</param>
/// <param name="InFlight">Requests dispatched to it and not finished.</param>
/// <param name="KvUsage">KV-cache blocks used / total, 0..1.</param>
/// <param name="Circuit">Its circuit-breaker state.</param>
/// <param name="Draining">True while it gets no new requests.</param>
public readonly record struct WorkerTelemetry(string Worker, int InFlight, double KvUsage, CircuitState Circuit, bool Draining);

/// <summary>Knobs of <see cref="GatewayMetrics"/> (configuration section <c>Gateway:Telemetry:Metrics</c>).</summary>
public sealed class GatewayMetricsOptions
{
    /// <summary>Tenant label = the first this-many segments of the tenant path (org/team); the key level is never a label.</summary>
    public int TenantLabelDepth { get; set; } = 2;

    /// <summary>Distinct tenant label values; tenants seen after this many share the label value <c>other</c>.</summary>
    public int MaxTenantLabels { get; set; } = 200;
}

/// <summary>
/// The gateway's Prometheus series, declared with prometheus-net on a registry of this gateway's own (two gateways
/// in one process never mix their series). The request path calls the <c>Record…</c> methods; worker load, pins and
/// Redis health are read at scrape time through callbacks the host sets. Labels carry tenant paths cut to
/// <see cref="GatewayMetricsOptions.TenantLabelDepth"/> segments with bounded cardinality, policy and worker names,
/// status codes and endpoint names: never API keys or prompt text. Names are listed in <see cref="Names"/>
/// (docs/operations.md has the table).
/// </summary>
public sealed class GatewayMetrics : IDisposable
{
    /// <summary>ActivitySource name of the gateway's spans (<see cref="GatewayTracing.SourceName"/>).</summary>
    public const string MeterName = "Gateway";

    /// <summary>Prometheus names of the series this class produces (what dashboards and alerts may reference).</summary>
    public static class Names
    {
#pragma warning disable CS1591 // names are self-describing
        public const string Requests = "gateway_requests_total";
        public const string TimeToFirstToken = "gateway_time_to_first_token_seconds";
        public const string InterTokenLatency = "gateway_inter_token_latency_seconds";
        public const string RequestDuration = "gateway_request_duration_seconds";
        public const string QueueWait = "gateway_queue_wait_seconds";
        public const string QueueRejections = "gateway_queue_rejections_total";
        public const string RoutingDecision = "gateway_routing_decision_duration_seconds";
        public const string PromptTokens = "gateway_prompt_tokens_total";
        public const string PredictedCachedTokens = "gateway_cache_predicted_tokens_total";
        public const string ActualCachedTokens = "gateway_cache_actual_tokens_total";
        public const string CachePredictionError = "gateway_cache_prediction_error_total";
        public const string Retries = "gateway_upstream_retries_total";
        public const string WorkerInFlight = "gateway_worker_in_flight";
        public const string WorkerKvUsage = "gateway_worker_kv_usage_ratio";
        public const string WorkerCircuitState = "gateway_worker_circuit_state";
        public const string WorkerDraining = "gateway_worker_draining";
        public const string CircuitTransitions = "gateway_circuit_transitions_total";
        public const string RetentionPinsActive = "gateway_retention_pins_active";
        public const string RetentionPinsCreated = "gateway_retention_pins_created_total";
        public const string RetentionPinsExpired = "gateway_retention_pins_expired_total";
        public const string RetentionPinsDropped = "gateway_retention_pins_dropped_total";
        public const string RedisUp = "gateway_redis_up";
        public const string ProcessGcHeap = "gateway_process_gc_heap_bytes";
        public const string ProcessGcCommitted = "gateway_process_gc_committed_bytes";
        public const string RedisErrors = "gateway_redis_errors_total";
        public const string RedisCommandDuration = "gateway_redis_command_duration_seconds";
        public const string LabelOverflow = "telemetry_exporter_overflow_measurements_total";
#pragma warning restore CS1591

        /// <summary>Every name above.</summary>
        public static IReadOnlyList<string> All { get; } =
        [
            Requests, TimeToFirstToken, InterTokenLatency, RequestDuration, QueueWait, QueueRejections, RoutingDecision, PromptTokens,
            PredictedCachedTokens, ActualCachedTokens, CachePredictionError, Retries, WorkerInFlight, WorkerKvUsage,
            WorkerCircuitState, WorkerDraining, CircuitTransitions, RetentionPinsActive, RetentionPinsCreated,
            RetentionPinsExpired, RetentionPinsDropped, RedisUp, RedisErrors, RedisCommandDuration, LabelOverflow, ProcessGcHeap, ProcessGcCommitted,
        ];
    }

    /// <summary>Buckets (seconds) of TTFT, end-to-end and queue-wait histograms: 1 ms … 5 min.</summary>
    public static readonly double[] LatencyBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
    private static readonly double[] s_routingBuckets =
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];
    private static readonly double[] s_itlBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5];
    private static readonly double[] s_redisBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

    private readonly BoundedLabelValues _tenants;
    private readonly Counter _requests, _queueRejections, _promptTokens, _predicted, _actual, _predictionError, _retries;
    private readonly Counter _pinsCreated, _pinsExpired, _pinsDropped, _circuitTransitions, _redisErrors, _overflow;
    private readonly Histogram _ttft, _itl, _e2e, _queueWait, _routing, _redisDuration;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, PolicySeries> _byPolicy = new(StringComparer.Ordinal);
    private PolicySeries? _lastPolicy;
    private readonly Gauge _activePinsGauge, _redisUp, _gcHeap, _gcCommitted;
    private readonly ObservedGauge _inFlight, _kvUsage, _circuit, _draining;
    private readonly Counter.Child _overflowRequests, _overflowTtft, _overflowItl, _overflowE2e, _overflowQueueWait, _overflowRejections;
    private Func<IReadOnlyList<WorkerTelemetry>>? _workers;
    private Func<long>? _activePins;
    private int _redisHealth = -1; // -1 unknown, 0 down, 1 up
    private Func<bool?>? _redisHealthSource;

    /// <summary>Declares the series on a new registry of this gateway's own.</summary>
    public GatewayMetrics(GatewayMetricsOptions? options = null)
    {
        options ??= new GatewayMetricsOptions();
        Registry = Metrics.NewCustomRegistry();
        Factory = Metrics.WithCustomRegistry(Registry);
        _tenants = new BoundedLabelValues(options.MaxTenantLabels, options.TenantLabelDepth);
        var f = Factory;
        _requests = f.CreateCounter(Names.Requests, "Completed gateway requests by tenant (org/team), HTTP status and endpoint.", ["tenant", "status", "endpoint"]);
        _ttft = Histogram(Names.TimeToFirstToken, "Time from request arrival at the gateway to the first streamed token.", LatencyBuckets, ["tenant"]);
        _itl = Histogram(Names.InterTokenLatency, "Gap between consecutive streamed tokens (chunks) of one response.", s_itlBuckets, ["tenant"]);
        _e2e = Histogram(Names.RequestDuration, "End-to-end request duration at the gateway, from arrival to last byte.", LatencyBuckets, "tenant", "stream");
        _queueWait = Histogram(Names.QueueWait, "Time a request waited in the fair scheduler before dispatch.", LatencyBuckets, ["tenant"]);
        _queueRejections = f.CreateCounter(Names.QueueRejections, "Requests refused or dropped by the gateway's fair queue, by tenant and reason.", ["tenant", "reason"]);
        _routing = Histogram(Names.RoutingDecision, "Time the routing policy took to choose a worker.", s_routingBuckets, "policy");
        _promptTokens = f.CreateCounter(Names.PromptTokens, "Prompt tokens of routed requests (denominator of the cache hit ratios).", ["policy"]);
        _predicted = f.CreateCounter(Names.PredictedCachedTokens, "Prompt tokens the routing policy predicted the chosen worker had cached.", ["policy"]);
        _actual = f.CreateCounter(Names.ActualCachedTokens, "Prompt tokens the worker reported as cached (usage.prompt_tokens_details.cached_tokens).", ["policy"]);
        _predictionError = f.CreateCounter(Names.CachePredictionError, "Absolute difference between predicted and actual cached tokens, summed.", ["policy"]);
        _retries = f.CreateCounter(Names.Retries, "Upstream attempts retried on another worker, by reason.", ["reason"]);
        _pinsCreated = f.CreateCounter(Names.RetentionPinsCreated, "KV retention pins requested from workers.");
        _pinsExpired = f.CreateCounter(Names.RetentionPinsExpired, "Retention pins whose TTL ran out on a worker (neither released nor dropped first).");
        _pinsDropped = f.CreateCounter(Names.RetentionPinsDropped, "Retention pins a worker dropped under memory pressure.", ["worker"]);
        _circuitTransitions = f.CreateCounter(Names.CircuitTransitions, "Circuit-breaker state changes by worker and new state.", ["worker", "state"]);
        _redisErrors = f.CreateCounter(Names.RedisErrors, "Failed Redis commands by operation.", ["operation"]);
        _redisDuration = Histogram(Names.RedisCommandDuration, "Redis command round-trip time by operation.", s_redisBuckets, "operation");
        _overflow = f.CreateCounter(Names.LabelOverflow,
            "Measurements whose tenant label was folded into 'other' because the distinct tenant labels reached their cap, by metric.", ["metric"]);
        _overflowRequests = _overflow.WithLabels([Names.Requests]);
        _overflowTtft = _overflow.WithLabels([Names.TimeToFirstToken]);
        _overflowItl = _overflow.WithLabels([Names.InterTokenLatency]);
        _overflowE2e = _overflow.WithLabels([Names.RequestDuration]);
        _overflowQueueWait = _overflow.WithLabels([Names.QueueWait]);
        _overflowRejections = _overflow.WithLabels([Names.QueueRejections]);

        _inFlight = new ObservedGauge(f.CreateGauge(Names.WorkerInFlight, "Requests in flight per worker, as the gateway charged them.", ["worker"]));
        _kvUsage = new ObservedGauge(f.CreateGauge(Names.WorkerKvUsage, "KV-cache blocks used / total per worker (last reported state).", ["worker"]));
        _circuit = new ObservedGauge(f.CreateGauge(Names.WorkerCircuitState, "Circuit-breaker state per worker: 0 closed, 1 half-open, 2 open.", ["worker"]));
        _draining = new ObservedGauge(f.CreateGauge(Names.WorkerDraining, "1 while the worker is draining (gets no new requests).", ["worker"]));
        _activePinsGauge = f.CreateGauge(Names.RetentionPinsActive, "KV retention pins currently held on workers.",
            new GaugeConfiguration { SuppressInitialValue = true });
        _redisUp = f.CreateGauge(Names.RedisUp, "1 when the shared-state Redis answered its last health check, 0 when not.",
            new GaugeConfiguration { SuppressInitialValue = true });
        _gcHeap = f.CreateGauge(Names.ProcessGcHeap, "Managed heap size after the last garbage collection (what a soak run watches for growth).");
        _gcCommitted = f.CreateGauge(Names.ProcessGcCommitted, "Memory the garbage collector held committed at the last collection: the managed heap plus its free space and budgets (the GC's share of the RSS).");
        Registry.AddBeforeCollectCallback(ObserveAtScrape);
    }

    /// <summary>This gateway's registry: what <c>/metrics</c> serves.</summary>
    public CollectorRegistry Registry { get; }

    /// <summary>Factory on <see cref="Registry"/> for series declared elsewhere (fair queue, agent layer).</summary>
    public IMetricFactory Factory { get; }

    /// <summary>Runs <paramref name="observe"/> before every scrape (series whose values are read, not recorded).</summary>
    public void OnCollect(Action observe) => Registry.AddBeforeCollectCallback(observe);

    /// <summary>The current exposition in Prometheus text format 0.0.4 (tools and tests; <c>/metrics</c> streams it).</summary>
    public async Task<string> ScrapeAsync(CancellationToken cancellationToken = default)
    {
        using var stream = new MemoryStream();
        await Registry.CollectAndExportAsTextAsync(stream, cancellationToken).ConfigureAwait(false);
        return System.Text.Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    /// <summary>Tenant label value for a tenant path: first segments only, bounded distinct values.</summary>
    public string TenantLabel(string? tenantPath) => _tenants.Get(tenantPath);

    /// <summary>Sets the callback read at scrape time for per-worker gauges (null: no worker series).</summary>
    public void SetWorkerSource(Func<IReadOnlyList<WorkerTelemetry>>? workers) => _workers = workers;

    /// <summary>Sets the callback read at scrape time for the active retention pin count.</summary>
    public void SetActivePinsSource(Func<long>? activePins) => _activePins = activePins;

    /// <summary>Sets the callback read at scrape time for Redis health (null result: not configured, no series).</summary>
    public void SetRedisHealthSource(Func<bool?>? healthy) => _redisHealthSource = healthy;

    /// <summary>Records the outcome of a Redis health check (used when no health source callback is set).</summary>
    public void SetRedisHealth(bool healthy) => Volatile.Write(ref _redisHealth, healthy ? 1 : 0);

    /// <summary>A finished request.</summary>
    public void RecordRequest(string? tenantPath, int statusCode, string endpoint) =>
        _requests.WithLabels([Tenant(tenantPath, _overflowRequests), StatusText(statusCode), endpoint]).Inc();

    /// <summary>Time to first token of a streamed (or first byte of a non-streamed) response.</summary>
    public void RecordTimeToFirstToken(string? tenantPath, TimeSpan ttft) =>
        _ttft.WithLabels([Tenant(tenantPath, _overflowTtft)]).Observe(ttft.TotalSeconds);

    /// <summary>One inter-token gap.</summary>
    public void RecordInterTokenLatency(string? tenantPath, TimeSpan gap) =>
        _itl.WithLabels([Tenant(tenantPath, _overflowItl)]).Observe(gap.TotalSeconds);

    /// <summary>End-to-end duration of a finished request.</summary>
    public void RecordRequestDuration(string? tenantPath, TimeSpan duration, bool streamed) =>
        _e2e.WithLabels([Tenant(tenantPath, _overflowE2e), streamed ? "true" : "false"]).Observe(duration.TotalSeconds);

    /// <summary>Time spent queued before dispatch.</summary>
    public void RecordQueueWait(string? tenantPath, TimeSpan wait) =>
        _queueWait.WithLabels([Tenant(tenantPath, _overflowQueueWait)]).Observe(wait.TotalSeconds);

    /// <summary>A request refused or dropped by the gateway's fair queue (<paramref name="reason"/>: a small fixed vocabulary).</summary>
    public void RecordQueueRejection(string? tenantPath, string reason) =>
        _queueRejections.WithLabels([Tenant(tenantPath, _overflowRejections), reason]).Inc();

    /// <summary>Duration of one routing decision by <paramref name="policy"/>.</summary>
    public void RecordRoutingDecision(string policy, TimeSpan duration) => ByPolicy(policy).Routing.Observe(duration.TotalSeconds);

    /// <summary>Predicted vs actual prefix-cache hit of one routed request.</summary>
    public void RecordCachedTokens(string policy, long promptTokens, long predictedCachedTokens, long actualCachedTokens)
    {
        var series = ByPolicy(policy);
        series.PromptTokens.Inc(Math.Max(0, promptTokens));
        series.Predicted.Inc(Math.Max(0, predictedCachedTokens));
        series.Actual.Inc(Math.Max(0, actualCachedTokens));
        series.PredictionError.Inc(Math.Abs(predictedCachedTokens - actualCachedTokens));
    }

    /// <summary>An upstream attempt was retried (<paramref name="reason"/>: a small fixed vocabulary, e.g. connect, 503, timeout).</summary>
    public void RecordRetry(string reason) => _retries.WithLabels([reason]).Inc();

    /// <summary>Retention pins requested.</summary>
    public void RecordRetentionPinsCreated(long count) => _pinsCreated.Inc(Math.Max(0, count));

    /// <summary>Retention pins that reached their TTL on a worker (from the workers' <c>pins_expired_total</c>).</summary>
    public void RecordRetentionPinsExpired(long count) => _pinsExpired.Inc(Math.Max(0, count));

    /// <summary>Retention pins a worker reported dropped.</summary>
    public void RecordRetentionPinsDropped(string worker, long count) => _pinsDropped.WithLabels([worker]).Inc(Math.Max(0, count));

    /// <summary>A worker's circuit breaker changed state.</summary>
    public void RecordCircuitTransition(string worker, CircuitState state) => _circuitTransitions.WithLabels([worker, CircuitText(state)]).Inc();

    /// <summary>A Redis command finished (<paramref name="operation"/>: a fixed command name, never a key).</summary>
    public void RecordRedisCommand(string operation, TimeSpan duration, bool failed)
    {
        _redisDuration.WithLabels([operation]).Observe(duration.TotalSeconds);
        if (failed) _redisErrors.WithLabels([operation]).Inc();
    }

    /// <summary>Stops reading the host's callbacks (the registry itself holds no unmanaged state).</summary>
    public void Dispose()
    {
        _workers = null;
        _activePins = null;
        _redisHealthSource = null;
    }

    private Histogram Histogram(string name, string help, double[] buckets, params string[] labels) =>
        Factory.CreateHistogram(name, help, labels, new HistogramConfiguration { Buckets = buckets });

    // The policy-labelled series of each routing policy name (a handful per process), found once: a request records five.
    private PolicySeries ByPolicy(string policy)
    {
        var last = _lastPolicy;
        if (last is not null && ReferenceEquals(last.Policy, policy))
        {
            return last;
        }

        var series = _byPolicy.GetOrAdd(policy, p => new PolicySeries(p, _routing.WithLabels([p]), _promptTokens.WithLabels([p]),
            _predicted.WithLabels([p]), _actual.WithLabels([p]), _predictionError.WithLabels([p])));
        _lastPolicy = series;
        return series;
    }

    private sealed record PolicySeries(string Policy, Histogram.Child Routing, Counter.Child PromptTokens, Counter.Child Predicted,
        Counter.Child Actual, Counter.Child PredictionError);

    private string Tenant(string? tenantPath, Counter.Child overflow)
    {
        string label = _tenants.Get(tenantPath, out bool folded);
        if (folded) overflow.Inc();
        return label;
    }

    private void ObserveAtScrape()
    {
        var ws = _workers?.Invoke() ?? [];
        _inFlight.Update(ws, Worker, w => w.InFlight);
        _kvUsage.Update(ws, Worker, w => Math.Clamp(w.KvUsage, 0, 1));
        _circuit.Update(ws, Worker, w => (int)w.Circuit);
        _draining.Update(ws, Worker, w => w.Draining ? 1 : 0);

        if (_activePins is { } pins) _activePinsGauge.Set(pins());
        else _activePinsGauge.Unpublish();

        bool? up = _redisHealthSource is { } source ? source() : Volatile.Read(ref _redisHealth) switch { 1 => true, 0 => false, _ => null };
        if (up is bool b) _redisUp.Set(b ? 1 : 0);
        else _redisUp.Unpublish();

        var gc = GC.GetGCMemoryInfo();
        _gcHeap.Set(gc.HeapSizeBytes);
        _gcCommitted.Set(gc.TotalCommittedBytes);
    }

    private static string Worker(WorkerTelemetry w) => w.Worker;

    private static readonly string[] s_status = CreateStatusTexts();

    private static string[] CreateStatusTexts()
    {
        var a = new string[600];
        for (int i = 100; i < 600; i++) a[i] = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return a;
    }

    private static string StatusText(int status) => status is >= 100 and < 600 ? s_status[status] : "other";

    private static string CircuitText(CircuitState s) => s switch
    {
        CircuitState.Closed => "closed",
        CircuitState.HalfOpen => "half_open",
        _ => "open",
    };
}

/// <summary>
/// Maps raw values (tenant paths) to label values with bounded cardinality: the path is cut to its first
/// <c>depth</c> '/'-separated segments (so the key level never becomes a label), each segment to 64 characters;
/// after <c>max</c> distinct values every new one maps to <c>other</c>. Thread-safe; lookups of known values
/// allocate nothing.
/// </summary>
internal sealed class BoundedLabelValues(int max, int depth)
{
    public const string Other = "other";
    public const string Unknown = "unknown";
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, string> _byRaw = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _labels = new(StringComparer.Ordinal);
    private readonly int _max = Math.Max(1, max);
    private readonly int _depth = Math.Max(1, depth);

    public int Count => _labels.Count;

    public string Get(string? raw) => Get(raw, out _);

    /// <summary>As <see cref="Get(string?)"/>; <paramref name="folded"/> is true when the cap turned the value into <see cref="Other"/>.</summary>
    public string Get(string? raw, out bool folded)
    {
        folded = false;
        if (string.IsNullOrEmpty(raw)) return Unknown;
        if (_byRaw.TryGetValue(raw, out string? cached))
        {
            folded = ReferenceEquals(cached, FoldedOther);
            return cached;
        }
        string label = Normalise(raw);
        if (!_labels.ContainsKey(label))
        {
            lock (_labels)
            {
                if (!_labels.ContainsKey(label))
                {
                    if (_labels.Count >= _max)
                    {
                        label = FoldedOther;
                        folded = true;
                    }
                    else _labels.TryAdd(label, 0);
                }
            }
        }
        if (_byRaw.Count < _max * 4) _byRaw.TryAdd(raw, label); // bounded memo of raw → label
        return label;
    }

    // A distinct instance of "other" marks values the cap folded (a tenant literally named "other" is not counted).
    private static readonly string FoldedOther = new(Other.AsSpan());

    private string Normalise(string raw)
    {
        var parts = raw.Split('/', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) return Unknown;
        int n = Math.Min(_depth, parts.Length);
        for (int i = 0; i < n; i++)
            if (parts[i].Length > 64) parts[i] = parts[i][..64];
        return string.Join('/', parts, 0, n);
    }
}
