using System.Diagnostics;
using Llm.Prompt.OpenAi;
using Gateway.Core.Routing;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// A request's metrics, span tags and routing regret, in one place: the request counter by status (499 for a client that
/// hung up before the answer ended), duration, time to first token, inter-token gaps of a stream, predicted vs actual
/// cached tokens, and the tenant, model, session source, queue wait, retries and worker on the request's span.
/// </summary>
public sealed class RequestTelemetry
{
    private readonly GatewayMetrics _metrics;
    private readonly IRoutingPolicy _policy;
    private readonly RecentRegret _regret;
    private readonly TimeProvider _time;

    /// <summary>Creates the recorder (singleton).</summary>
    public RequestTelemetry(GatewayMetrics metrics, IRoutingPolicy policy, RecentRegret regret, TimeProvider time)
    {
        _metrics = metrics;
        _policy = policy;
        _regret = regret;
        _time = time;
    }

    /// <summary>The endpoint label of the request metrics.</summary>
    public static string EndpointName(OpenAiEndpoint endpoint, IRequestTranslation? translation) => translation?.EndpointName ?? endpoint switch
    {
        OpenAiEndpoint.ChatCompletions => "chat_completions",
        OpenAiEndpoint.Completions => "completions",
        _ => "embeddings",
    };

    /// <summary>Starts observing a planned request's stream (inter-token latency as the client sees it).</summary>
    public void OnPlanned(GatewayRequestContext ctx)
    {
        if (ctx.Request.Stream)
        {
            string tenantPath = ctx.Tenant.Path;
            ctx.OnTokenGap = gap => _metrics.RecordInterTokenLatency(tenantPath, gap);
        }
    }

    /// <summary>Records a token-counting request (no inference: only the request counter).</summary>
    public void OnCounted(HttpContext context, string? tenantPath, string endpointName) =>
        _metrics.RecordRequest(tenantPath, context.Response.StatusCode, endpointName);

    /// <summary>Records a finished request (any outcome, also refused or unauthenticated ones: <paramref name="ctx"/> null).</summary>
    public void OnFinished(HttpContext context, string? tenantPath, string endpointName, long startedTimestamp, GatewayRequestContext? ctx)
    {
        bool hungUpEarly = context.RequestAborted.IsCancellationRequested && ctx is not { SawDone: true };
        _metrics.RecordRequest(tenantPath, hungUpEarly ? 499 : context.Response.StatusCode, endpointName);
        if (tenantPath is null || ctx is null)
        {
            return;
        }

        _metrics.RecordRequestDuration(tenantPath, _time.GetElapsedTime(startedTimestamp), ctx.Request.Stream);
        if (ctx.FirstEventSeen)
        {
            _metrics.RecordTimeToFirstToken(tenantPath, ctx.FirstEventAt);
        }

        if (ctx.UsageSeen)
        {
            _metrics.RecordCachedTokens(_policy.Name, ctx.PromptTokens, ctx.PredictedCachedTokens, ctx.CachedTokens);
            _regret.Record(ctx.Worker?.Prefix, ctx.Tenant.Team, ctx.PromptTokens, ctx.PredictedCachedTokens, ctx.Route.Decision?.BestOtherCachedTokens ?? 0, ctx.CachedTokens);
        }

        var span = Activity.Current;
        GatewayTracing.TagRequest(span, tenantPath, ctx.Request.Model, ctx.SessionSource ?? "none");
        GatewayTracing.TagQueueWait(span, ctx.QueueWait);
        GatewayTracing.TagRetries(span, Math.Max(0, ctx.Attempts - 1));
        if (ctx.Worker is { } w)
        {
            GatewayTracing.TagRouting(span, w.Prefix, _policy.Name, ctx.PredictedCachedTokens);
        }

        if (ctx.UsageSeen)
        {
            GatewayTracing.TagActualCachedTokens(span, ctx.CachedTokens);
        }
    }
}
