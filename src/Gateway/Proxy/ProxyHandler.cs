using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Core.Routing;
using Gateway.Hosting;
using Gateway.Proxy.Pipeline;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy;

/// <summary>
/// The path every OpenAI request takes, as a pipeline of stages built by DI: authenticate →
/// <see cref="RequestAdmission"/> (body read once, parsed once, session, model, caps) → <see cref="RequestPlanner"/>
/// (tokens, block hashes, forwarded body: one <see cref="GatewayRequestContext"/> every later stage reads) →
/// <see cref="FairQueueStage"/> → <see cref="ForwardingStage"/> (route, breaker, forward, retry) →
/// <see cref="FailureAnswer"/> when nothing was delivered → <see cref="RequestSettlement"/> (usage, agent layer, fair
/// queue charges) and <see cref="RequestTelemetry"/> (metrics, spans, regret).
/// </summary>
public sealed class ProxyHandler
{
    private readonly ApiKeyAuthenticator _auth;
    private readonly InFlightTracker _inFlight;
    private readonly TimeProvider _time;
    private readonly RequestAdmission _admission;
    private readonly RequestPlanner _planner;
    private readonly FairQueueStage _queue;
    private readonly ForwardingStage _forwarding;
    private readonly FailureAnswer _failures;
    private readonly RequestSettlement _settlement;
    private readonly RequestTelemetry _telemetry;

    /// <summary>Creates the handler (singleton).</summary>
    public ProxyHandler(
        ApiKeyAuthenticator auth,
        InFlightTracker inFlight,
        TimeProvider time,
        RequestAdmission admission,
        RequestPlanner planner,
        FairQueueStage queue,
        ForwardingStage forwarding,
        FailureAnswer failures,
        RequestSettlement settlement,
        RequestTelemetry telemetry,
        IRoutingPolicy policy,
        RecentRegret regret)
    {
        _auth = auth;
        _inFlight = inFlight;
        _time = time;
        _admission = admission;
        _planner = planner;
        _queue = queue;
        _forwarding = forwarding;
        _failures = failures;
        _settlement = settlement;
        _telemetry = telemetry;
        Policy = policy;
        Regret = regret;
    }

    /// <summary>Recent routing decisions with predicted vs actual cached tokens (for /status).</summary>
    public RecentRegret Regret { get; }

    /// <summary>The routing policy in use.</summary>
    public IRoutingPolicy Policy { get; }

    /// <summary>Handles one OpenAI request to <paramref name="endpoint"/>.</summary>
    public Task HandleAsync(HttpContext context, OpenAiEndpoint endpoint) => HandleAsync(context, endpoint, null);

    /// <summary>
    /// Handles one request. With a <paramref name="translation"/> (another client API: Anthropic Messages, OpenAI
    /// Responses) the client's body is first translated into a chat completions body, which then takes exactly the
    /// path a chat completion takes; the caller translates the answer back (see <see cref="TranslatingResponseStream"/>).
    /// </summary>
    public async Task HandleAsync(HttpContext context, OpenAiEndpoint endpoint, IRequestTranslation? translation)
    {
        using var inFlight = _inFlight.Enter();
        long started = _time.GetTimestamp();
        Tenant? tenant = null;
        GatewayRequestContext? ctx = null;
        try
        {
            tenant = _auth.Authenticate(ApiCredential.Of(context.Request.Headers));
            // The admitted value goes straight to the planner (not kept in this method's state across awaits); only
            // its pooled body is kept, to be given back once the answer is sent.
            PooledBody body;
            (ctx, body) = Plan(await _admission.AdmitAsync(context, tenant, endpoint, translation).ConfigureAwait(false));
            if (ctx is null)
            {
                return;
            }

            try
            {
                context.Features.Set(ctx);
                var agentTurn = _settlement.OnArrived(ctx, context.Request.Headers);
                var (proceed, ticket) = await _queue.EnterAsync(context, ctx).ConfigureAwait(false);
                if (!proceed)
                {
                    return;
                }

                try
                {
                    _telemetry.OnPlanned(ctx);
                    var outcome = await _forwarding.SendAsync(context, ctx, ticket?.PickedFor).ConfigureAwait(false);
                    _settlement.OnAttemptsEnded(ctx, outcome, agentTurn);
                    await _failures.WriteAsync(context, outcome, ctx.Request.Model).ConfigureAwait(false);
                }
                finally
                {
                    _settlement.Release(ctx, ticket);
                }
            }
            finally
            {
                body.Dispose();
            }
        }
        finally
        {
            _telemetry.OnFinished(context, tenant?.Path, RequestTelemetry.EndpointName(endpoint, translation), started, ctx);
        }
    }

    private (GatewayRequestContext? Context, PooledBody Body) Plan(AdmittedRequest? admitted)
    {
        if (admitted is not { } request)
        {
            return (null, default);
        }

        try
        {
            return (_planner.Plan(in request), request.Pooled);
        }
        catch
        {
            request.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Authenticates, reads and translates the body like <see cref="HandleAsync(HttpContext, OpenAiEndpoint, IRequestTranslation?)"/>,
    /// checks the model, and answers 200 with <paramref name="render"/>(prompt tokens) as counted by the gateway's
    /// tokenizer for that model (the count routing uses). No worker is asked. (Anthropic's <c>/v1/messages/count_tokens</c>.)
    /// </summary>
    public async Task CountPromptTokensAsync(HttpContext context, IRequestTranslation translation, Func<int, byte[]> render)
    {
        Tenant? tenant = null;
        try
        {
            tenant = _auth.Authenticate(ApiCredential.Of(context.Request.Headers));
            using var admitted = await _admission.AdmitAsync(context, tenant, OpenAiEndpoint.ChatCompletions, translation, countOnly: true).ConfigureAwait(false);
            if (admitted is not { } request)
            {
                return;
            }

            var bytes = render(_planner.CountTokens(request.Request.Model, request.Request.PromptText));
            context.Response.StatusCode = 200;
            context.Response.ContentType = "application/json";
            await context.Response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
        }
        finally
        {
            _telemetry.OnCounted(context, tenant?.Path, translation.EndpointName);
        }
    }
}
