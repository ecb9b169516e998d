using System.Diagnostics;

namespace Gateway.Telemetry;

/// <summary>
/// The gateway's <see cref="ActivitySource"/> and helpers that put the routing facts on the request's server
/// span (the ASP.NET Core activity, <see cref="Activity.Current"/> inside a handler). Tag values are tenant
/// paths, model ids, policy and worker names and numbers: never API keys, prompts or completions.
/// W3C trace context reaches workers because HttpClient (and YARP's forwarder) inject <c>traceparent</c>
/// from the current activity.
/// </summary>
public static class GatewayTracing
{
    /// <summary>The span of one forwarding attempt to a worker: a child of the request's server span and the parent of
    /// the HttpClient span that carries it (one per attempt, so retries show as siblings).</summary>
    public const string UpstreamSpanName = "gateway.upstream";

    /// <summary>ActivitySource name (same as the meter name).</summary>
    public const string SourceName = GatewayMetrics.MeterName;

    /// <summary>Sources the tracer provider listens to by default.</summary>
    public static readonly IReadOnlyList<string> DefaultSources = ["Microsoft.AspNetCore", "System.Net.Http", SourceName];

    /// <summary>Span tag names.</summary>
    public static class Tags
    {
#pragma warning disable CS1591
        public const string Tenant = "gateway.tenant";
        public const string Model = "gen_ai.request.model";
        public const string SessionKind = "gateway.session.kind";
        public const string Worker = "gateway.worker";
        public const string RoutingPolicy = "gateway.routing.policy";
        public const string PredictedCachedTokens = "gateway.routing.predicted_cached_tokens";
        public const string ActualCachedTokens = "gateway.cache.actual_tokens";
        public const string QueueWaitMs = "gateway.queue.wait_ms";
        public const string Retries = "gateway.retries";
        public const string Attempt = "gateway.attempt";
        public const string AttemptOutcome = "gateway.attempt.outcome";
#pragma warning restore CS1591
    }

    /// <summary>The gateway's activity source (child spans: queue, route, upstream attempt).</summary>
    public static ActivitySource Source { get; } = new(SourceName, "1.0");

    /// <summary>
    /// Whether tags on <paramref name="span"/> reach anyone: it asks for all data and is recorded or comes from a source
    /// something listens to. Not so for the server span ASP.NET Core creates with no tracer provider (tracing off): it
    /// exists for log correlation and propagation only, yet asks for all data; tagging it cost ~0.4 KB per request.
    /// </summary>
    public static bool Tagged([System.Diagnostics.CodeAnalysis.NotNullWhen(true)] Activity? span) =>
        span is { IsAllDataRequested: true } && (span.Recorded || span.Source.HasListeners());

    /// <summary>Starts an internal child span (e.g. <c>gateway.route</c>) when something listens; otherwise null.</summary>
    public static Activity? StartSpan(string name, ActivityKind kind = ActivityKind.Internal) => Source.StartActivity(name, kind);

    /// <summary>Tags the request span with who asked for what: tenant path (not the key), model, session kind
    /// (e.g. <c>none</c>, <c>header</c>, <c>agent_tool_return</c>).</summary>
    public static void TagRequest(Activity? span, string? tenantPath, string? model, string? sessionKind)
    {
        if (!Tagged(span)) return;
        if (tenantPath is not null) span.SetTag(Tags.Tenant, tenantPath);
        if (model is not null) span.SetTag(Tags.Model, model);
        if (sessionKind is not null) span.SetTag(Tags.SessionKind, sessionKind);
    }

    /// <summary>Tags the routing outcome: chosen worker, policy, the cached tokens it predicted.</summary>
    public static void TagRouting(Activity? span, string worker, string policy, long predictedCachedTokens)
    {
        if (!Tagged(span)) return;
        span.SetTag(Tags.Worker, worker);
        span.SetTag(Tags.RoutingPolicy, policy);
        span.SetTag(Tags.PredictedCachedTokens, predictedCachedTokens);
    }

    /// <summary>Tags the time spent in the fair scheduler, in milliseconds.</summary>
    public static void TagQueueWait(Activity? span, TimeSpan wait)
    {
        if (!Tagged(span)) return;
        span.SetTag(Tags.QueueWaitMs, Math.Round(wait.TotalMilliseconds, 3));
    }

    /// <summary>Tags the number of upstream retries.</summary>
    public static void TagRetries(Activity? span, int retries)
    {
        if (!Tagged(span)) return;
        span.SetTag(Tags.Retries, retries);
    }

    /// <summary>Tags the cached tokens the worker reported.</summary>
    public static void TagActualCachedTokens(Activity? span, long cachedTokens)
    {
        if (!Tagged(span)) return;
        span.SetTag(Tags.ActualCachedTokens, cachedTokens);
    }

    /// <summary>Starts the <see cref="UpstreamSpanName"/> span of attempt number <paramref name="attempt"/> (1-based) to
    /// <paramref name="worker"/>; null when nothing listens.</summary>
    public static Activity? StartUpstream(string worker, int attempt)
    {
        var span = Source.StartActivity(UpstreamSpanName, ActivityKind.Internal);
        if (Tagged(span))
        {
            span.SetTag(Tags.Worker, worker);
            span.SetTag(Tags.Attempt, attempt);
        }

        return span;
    }

    /// <summary>Ends an upstream span's story: its outcome (e.g. <c>Delivered</c>, <c>ConnectFailed</c>) and, for a
    /// worker's fault, an error status.</summary>
    public static void TagAttemptOutcome(Activity? span, string outcome, bool workerFault)
    {
        if (!Tagged(span)) return;
        span.SetTag(Tags.AttemptOutcome, outcome);
        if (workerFault)
        {
            span.SetStatus(ActivityStatusCode.Error, outcome);
        }
    }
}
