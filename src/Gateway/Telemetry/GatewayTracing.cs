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
#pragma warning restore CS1591
    }

    /// <summary>The gateway's activity source (child spans: queue, route, upstream attempt).</summary>
    public static ActivitySource Source { get; } = new(SourceName, "1.0");

    /// <summary>Starts an internal child span (e.g. <c>gateway.route</c>) when something listens; otherwise null.</summary>
    public static Activity? StartSpan(string name, ActivityKind kind = ActivityKind.Internal) => Source.StartActivity(name, kind);

    /// <summary>Tags the request span with who asked for what: tenant path (not the key), model, session kind
    /// (e.g. <c>none</c>, <c>header</c>, <c>agent_tool_return</c>).</summary>
    public static void TagRequest(Activity? span, string? tenantPath, string? model, string? sessionKind)
    {
        if (span is null || !span.IsAllDataRequested) return;
        if (tenantPath is not null) span.SetTag(Tags.Tenant, tenantPath);
        if (model is not null) span.SetTag(Tags.Model, model);
        if (sessionKind is not null) span.SetTag(Tags.SessionKind, sessionKind);
    }

    /// <summary>Tags the routing outcome: chosen worker, policy, the cached tokens it predicted.</summary>
    public static void TagRouting(Activity? span, string worker, string policy, long predictedCachedTokens)
    {
        if (span is null || !span.IsAllDataRequested) return;
        span.SetTag(Tags.Worker, worker);
        span.SetTag(Tags.RoutingPolicy, policy);
        span.SetTag(Tags.PredictedCachedTokens, predictedCachedTokens);
    }

    /// <summary>Tags the time spent in the fair scheduler, in milliseconds.</summary>
    public static void TagQueueWait(Activity? span, TimeSpan wait)
    {
        if (span is null || !span.IsAllDataRequested) return;
        span.SetTag(Tags.QueueWaitMs, Math.Round(wait.TotalMilliseconds, 3));
    }

    /// <summary>Tags the number of upstream retries.</summary>
    public static void TagRetries(Activity? span, int retries)
    {
        if (span is null || !span.IsAllDataRequested) return;
        span.SetTag(Tags.Retries, retries);
    }

    /// <summary>Tags the cached tokens the worker reported.</summary>
    public static void TagActualCachedTokens(Activity? span, long cachedTokens)
    {
        if (span is null || !span.IsAllDataRequested) return;
        span.SetTag(Tags.ActualCachedTokens, cachedTokens);
    }
}
