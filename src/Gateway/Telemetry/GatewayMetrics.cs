using System.Diagnostics;
using System.Diagnostics.Metrics;

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
/// The gateway's own instruments (meter <see cref="MeterName"/>). The request path calls the <c>Record…</c>
/// methods; worker load, pins and Redis health are observed at scrape time through callbacks the host sets.
/// Labels carry tenant paths cut to <see cref="GatewayMetricsOptions.TenantLabelDepth"/> segments with bounded
/// cardinality, policy and worker names, status codes and endpoint names: never API keys or prompt text.
/// Prometheus names are listed in <see cref="Names"/> (docs/operations.md has the table).
/// </summary>
public sealed class GatewayMetrics : IDisposable
{
    /// <summary>Meter name; also the ActivitySource name (<see cref="GatewayTracing.SourceName"/>).</summary>
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
        public const string RedisErrors = "gateway_redis_errors_total";
        public const string RedisCommandDuration = "gateway_redis_command_duration_seconds";
#pragma warning restore CS1591

        /// <summary>Every name above.</summary>
        public static IReadOnlyList<string> All { get; } =
        [
            Requests, TimeToFirstToken, InterTokenLatency, RequestDuration, QueueWait, QueueRejections, RoutingDecision, PromptTokens,
            PredictedCachedTokens, ActualCachedTokens, CachePredictionError, Retries, WorkerInFlight, WorkerKvUsage,
            WorkerCircuitState, WorkerDraining, CircuitTransitions, RetentionPinsActive, RetentionPinsCreated,
            RetentionPinsExpired, RetentionPinsDropped, RedisUp, RedisErrors, RedisCommandDuration,
        ];
    }

    private static readonly double[] s_routingBuckets =
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];
    private static readonly double[] s_itlBuckets =
        [0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5];
    private static readonly double[] s_redisBuckets =
        [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly BoundedLabelValues _tenants;
    private readonly Counter<long> _requests;
    private readonly Counter<long> _queueRejections;
    private readonly Histogram<double> _ttft, _itl, _e2e, _queueWait, _routing, _redisDuration;
    private readonly Counter<long> _promptTokens, _predicted, _actual, _predictionError, _retries;
    private readonly Counter<long> _pinsCreated, _pinsExpired, _pinsDropped, _circuitTransitions, _redisErrors;
    private Func<IReadOnlyList<WorkerTelemetry>>? _workers;
    private Func<long>? _activePins;
    private int _redisHealth = -1; // -1 unknown, 0 down, 1 up
    private Func<bool?>? _redisHealthSource;

    /// <summary>Creates the instruments on a meter from <paramref name="meterFactory"/> (scoped to the app).</summary>
    public GatewayMetrics(IMeterFactory meterFactory, GatewayMetricsOptions? options = null)
        : this(meterFactory.Create(new MeterOptions(MeterName) { Version = "1.0" }), ownsMeter: false, options) { }

    /// <summary>Creates the instruments on a new unscoped meter (tools, benchmarks); disposed with this object.</summary>
    public GatewayMetrics(GatewayMetricsOptions? options = null) : this(new Meter(MeterName, "1.0"), ownsMeter: true, options) { }

    private GatewayMetrics(Meter meter, bool ownsMeter, GatewayMetricsOptions? options)
    {
        options ??= new GatewayMetricsOptions();
        _meter = meter;
        _ownsMeter = ownsMeter;
        _tenants = new BoundedLabelValues(options.MaxTenantLabels, options.TenantLabelDepth);
        _requests = meter.CreateCounter<long>("gateway.requests", "{request}",
            "Completed gateway requests by tenant (org/team), HTTP status and endpoint.");
        _ttft = meter.CreateHistogram<double>("gateway.time_to_first_token", "s",
            "Time from request arrival at the gateway to the first streamed token.");
        _itl = meter.CreateHistogram<double>("gateway.inter_token_latency", "s",
            "Gap between consecutive streamed tokens (chunks) of one response.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_itlBuckets });
        _e2e = meter.CreateHistogram<double>("gateway.request.duration", "s",
            "End-to-end request duration at the gateway, from arrival to last byte.");
        _queueWait = meter.CreateHistogram<double>("gateway.queue.wait", "s",
            "Time a request waited in the fair scheduler before dispatch.");
        _queueRejections = meter.CreateCounter<long>("gateway.queue.rejections", "{request}",
            "Requests refused or dropped by the gateway's fair queue, by tenant and reason.");
        _routing = meter.CreateHistogram<double>("gateway.routing.decision.duration", "s",
            "Time the routing policy took to choose a worker.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_routingBuckets });
        _promptTokens = meter.CreateCounter<long>("gateway.prompt_tokens", "{token}",
            "Prompt tokens of routed requests (denominator of the cache hit ratios).");
        _predicted = meter.CreateCounter<long>("gateway.cache.predicted_tokens", "{token}",
            "Prompt tokens the routing policy predicted the chosen worker had cached.");
        _actual = meter.CreateCounter<long>("gateway.cache.actual_tokens", "{token}",
            "Prompt tokens the worker reported as cached (usage.prompt_tokens_details.cached_tokens).");
        _predictionError = meter.CreateCounter<long>("gateway.cache.prediction_error", "{token}",
            "Absolute difference between predicted and actual cached tokens, summed.");
        _retries = meter.CreateCounter<long>("gateway.upstream.retries", "{retry}",
            "Upstream attempts retried on another worker, by reason.");
        _pinsCreated = meter.CreateCounter<long>("gateway.retention.pins.created", "{pin}",
            "KV retention pins requested from workers.");
        _pinsExpired = meter.CreateCounter<long>("gateway.retention.pins.expired", "{pin}",
            "Retention pins whose TTL ran out on a worker (neither released nor dropped first).");
        _pinsDropped = meter.CreateCounter<long>("gateway.retention.pins.dropped", "{pin}",
            "Retention pins a worker dropped under memory pressure.");
        _circuitTransitions = meter.CreateCounter<long>("gateway.circuit.transitions", "{transition}",
            "Circuit-breaker state changes by worker and new state.");
        _redisErrors = meter.CreateCounter<long>("gateway.redis.errors", "{error}",
            "Failed Redis commands by operation.");
        _redisDuration = meter.CreateHistogram<double>("gateway.redis.command.duration", "s",
            "Redis command round-trip time by operation.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_redisBuckets });

        meter.CreateObservableGauge("gateway.worker.in_flight", ObserveInFlight, "{request}",
            "Requests in flight per worker, as the gateway charged them.");
        meter.CreateObservableGauge("gateway.worker.kv_usage", ObserveKvUsage, "1",
            "KV-cache blocks used / total per worker (last reported state).");
        meter.CreateObservableGauge("gateway.worker.circuit_state", ObserveCircuit, "",
            "Circuit-breaker state per worker: 0 closed, 1 half-open, 2 open.");
        meter.CreateObservableGauge("gateway.worker.draining", ObserveDraining, "",
            "1 while the worker is draining (gets no new requests).");
        meter.CreateObservableGauge("gateway.retention.pins.active", ObserveActivePins, "{pin}",
            "KV retention pins currently held on workers.");
        meter.CreateObservableGauge("gateway.redis.up", ObserveRedis, "",
            "1 when the shared-state Redis answered its last health check, 0 when not.");
    }

    /// <summary>The meter the instruments live on.</summary>
    public Meter Meter => _meter;

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
    public void RecordRequest(string? tenantPath, int statusCode, string endpoint)
    {
        if (!_requests.Enabled) return;
        var tags = new TagList
        {
            { "tenant", _tenants.Get(tenantPath) },
            { "status", StatusText(statusCode) },
            { "endpoint", endpoint },
        };
        _requests.Add(1, tags);
    }

    /// <summary>Time to first token of a streamed (or first byte of a non-streamed) response.</summary>
    public void RecordTimeToFirstToken(string? tenantPath, TimeSpan ttft) =>
        _ttft.Record(ttft.TotalSeconds, new KeyValuePair<string, object?>("tenant", _tenants.Get(tenantPath)));

    /// <summary>One inter-token gap.</summary>
    public void RecordInterTokenLatency(string? tenantPath, TimeSpan gap) =>
        _itl.Record(gap.TotalSeconds, new KeyValuePair<string, object?>("tenant", _tenants.Get(tenantPath)));

    /// <summary>End-to-end duration of a finished request.</summary>
    public void RecordRequestDuration(string? tenantPath, TimeSpan duration, bool streamed) =>
        _e2e.Record(duration.TotalSeconds,
            new KeyValuePair<string, object?>("tenant", _tenants.Get(tenantPath)),
            new KeyValuePair<string, object?>("stream", streamed ? "true" : "false"));

    /// <summary>Time spent queued before dispatch.</summary>
    public void RecordQueueWait(string? tenantPath, TimeSpan wait) =>
        _queueWait.Record(wait.TotalSeconds, new KeyValuePair<string, object?>("tenant", _tenants.Get(tenantPath)));

    /// <summary>A request refused or dropped by the gateway's fair queue (<paramref name="reason"/>: a small fixed vocabulary).</summary>
    public void RecordQueueRejection(string? tenantPath, string reason) =>
        _queueRejections.Add(1, new KeyValuePair<string, object?>("tenant", _tenants.Get(tenantPath)), new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Duration of one routing decision by <paramref name="policy"/>.</summary>
    public void RecordRoutingDecision(string policy, TimeSpan duration) =>
        _routing.Record(duration.TotalSeconds, new KeyValuePair<string, object?>("policy", policy));

    /// <summary>Predicted vs actual prefix-cache hit of one routed request.</summary>
    public void RecordCachedTokens(string policy, long promptTokens, long predictedCachedTokens, long actualCachedTokens)
    {
        var tag = new KeyValuePair<string, object?>("policy", policy);
        _promptTokens.Add(Math.Max(0, promptTokens), tag);
        _predicted.Add(Math.Max(0, predictedCachedTokens), tag);
        _actual.Add(Math.Max(0, actualCachedTokens), tag);
        _predictionError.Add(Math.Abs(predictedCachedTokens - actualCachedTokens), tag);
    }

    /// <summary>An upstream attempt was retried (<paramref name="reason"/>: a small fixed vocabulary, e.g. connect, 503, timeout).</summary>
    public void RecordRetry(string reason) => _retries.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>Retention pins requested.</summary>
    public void RecordRetentionPinsCreated(long count) => _pinsCreated.Add(count);

    /// <summary>Retention pins that reached their TTL on a worker (from the workers' <c>pins_expired_total</c>).</summary>
    public void RecordRetentionPinsExpired(long count) => _pinsExpired.Add(count);

    /// <summary>Retention pins a worker reported dropped.</summary>
    public void RecordRetentionPinsDropped(string worker, long count) =>
        _pinsDropped.Add(count, new KeyValuePair<string, object?>("worker", worker));

    /// <summary>A worker's circuit breaker changed state.</summary>
    public void RecordCircuitTransition(string worker, CircuitState state) =>
        _circuitTransitions.Add(1, new KeyValuePair<string, object?>("worker", worker),
            new KeyValuePair<string, object?>("state", CircuitText(state)));

    /// <summary>A Redis command finished (<paramref name="operation"/>: a fixed command name, never a key).</summary>
    public void RecordRedisCommand(string operation, TimeSpan duration, bool failed)
    {
        var tag = new KeyValuePair<string, object?>("operation", operation);
        _redisDuration.Record(duration.TotalSeconds, tag);
        if (failed) _redisErrors.Add(1, tag);
    }

    /// <summary>Disposes the meter when this object created it.</summary>
    public void Dispose()
    {
        if (_ownsMeter) _meter.Dispose();
    }

    private IEnumerable<Measurement<long>> ObserveInFlight()
    {
        var ws = _workers?.Invoke();
        if (ws is null) yield break;
        foreach (var w in ws) yield return new Measurement<long>(w.InFlight, new KeyValuePair<string, object?>("worker", w.Worker));
    }

    private IEnumerable<Measurement<double>> ObserveKvUsage()
    {
        var ws = _workers?.Invoke();
        if (ws is null) yield break;
        foreach (var w in ws)
            yield return new Measurement<double>(Math.Clamp(w.KvUsage, 0, 1), new KeyValuePair<string, object?>("worker", w.Worker));
    }

    private IEnumerable<Measurement<int>> ObserveCircuit()
    {
        var ws = _workers?.Invoke();
        if (ws is null) yield break;
        foreach (var w in ws) yield return new Measurement<int>((int)w.Circuit, new KeyValuePair<string, object?>("worker", w.Worker));
    }

    private IEnumerable<Measurement<int>> ObserveDraining()
    {
        var ws = _workers?.Invoke();
        if (ws is null) yield break;
        foreach (var w in ws) yield return new Measurement<int>(w.Draining ? 1 : 0, new KeyValuePair<string, object?>("worker", w.Worker));
    }

    private IEnumerable<Measurement<long>> ObserveActivePins()
    {
        var f = _activePins;
        if (f is null) yield break;
        yield return new Measurement<long>(f());
    }

    private IEnumerable<Measurement<int>> ObserveRedis()
    {
        var f = _redisHealthSource;
        if (f is not null)
        {
            bool? up = f();
            if (up is bool b) yield return new Measurement<int>(b ? 1 : 0);
            yield break;
        }
        int h = Volatile.Read(ref _redisHealth);
        if (h >= 0) yield return new Measurement<int>(h);
    }

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

    public string Get(string? raw)
    {
        if (string.IsNullOrEmpty(raw)) return Unknown;
        if (_byRaw.TryGetValue(raw, out string? cached)) return cached;
        string label = Normalise(raw);
        if (!_labels.ContainsKey(label))
        {
            lock (_labels)
            {
                if (!_labels.ContainsKey(label))
                {
                    if (_labels.Count >= _max) label = Other;
                    else _labels.TryAdd(label, 0);
                }
            }
        }
        if (_byRaw.Count < _max * 4) _byRaw.TryAdd(raw, label); // bounded memo of raw → label
        return label;
    }

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
