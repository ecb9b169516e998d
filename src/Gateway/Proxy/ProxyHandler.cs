using System.Buffers;
using System.Diagnostics;
using System.Net;
using Gateway.Auth;
using Gateway.Configuration;
using Gateway.Core.Hashing;
using Gateway.Core.OpenAi;
using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Gateway.Core.Tenancy;
using Gateway.Core.Tokenization;
using Gateway.Fleet;
using Gateway.Hosting;
using Gateway.Scheduling;
using Gateway.Telemetry;
using Gateway.Usage;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// The path every OpenAI request takes: authenticate → read the body once (size-limited) → parse once → model and
/// tenant checks → session identity → tokenize and hash blocks with the tenant's salt → route → forward with YARP's
/// <see cref="IHttpForwarder"/> under a Polly retry (only before the first byte reaches the client) and the
/// worker's circuit breaker → settle load charges and usage.
/// </summary>
public sealed partial class ProxyHandler : IDisposable
{
    private static long s_nextRequestId;

    private readonly IHttpForwarder _forwarder;
    private readonly HttpMessageInvoker _invoker;
    private readonly ApiKeyAuthenticator _auth;
    private readonly WorkerRegistry _registry;
    private readonly IRoutingPolicy _policy;
    private readonly IUsageStore _usage;
    private readonly InFlightTracker _inFlight;
    private readonly GatewayOptions _options;
    private readonly ITokenizer _tokenizer;
    private readonly Dictionary<string, ITokenizer> _modelTokenizers = new(StringComparer.Ordinal);
    private readonly ForwarderRequestConfig _requestConfig;
    private readonly ProxySettings _settings;
    private readonly ResiliencePipeline<AttemptOutcome> _retry;
    private readonly ILogger<ProxyHandler> _logger;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly GatewayScheduling? _scheduling;
    private readonly RecentRegret _regret;
    private readonly Gateway.Agents.AgentRetentionService? _agents;
    private readonly ModelCatalog _models;

    /// <summary>Creates the handler (singleton).</summary>
    public ProxyHandler(
        IHttpForwarder forwarder,
        ApiKeyAuthenticator auth,
        WorkerRegistry registry,
        IRoutingPolicy policy,
        IUsageStore usage,
        InFlightTracker inFlight,
        IOptions<GatewayOptions> options,
        TimeProvider time,
        GatewayMetrics metrics,
        ILogger<ProxyHandler> logger,
        GatewayScheduling? scheduling = null,
        RecentRegret? regret = null,
        Gateway.Agents.AgentRetentionService? agents = null,
        ModelCatalog? models = null)
    {
        _models = models ?? new ModelCatalog(registry, options);
        _regret = regret ?? new RecentRegret();
        _scheduling = scheduling;
        _agents = agents;
        _metrics = metrics;
        _time = time;
        _forwarder = forwarder;
        _auth = auth;
        _registry = registry;
        _policy = policy;
        _usage = usage;
        _inFlight = inFlight;
        _options = options.Value;
        _logger = logger;
        var loaded = new Dictionary<string, ITokenizer>(StringComparer.Ordinal);
        ITokenizer Tokenizer(string spec) => loaded.TryGetValue(spec, out var t) ? t : loaded[spec] = Tokenizers.Create(spec);
        _tokenizer = Tokenizer(_options.Routing.EffectiveTokenizer(_options.Workers));
        foreach (var (model, spec) in _options.Routing.ModelTokenizers)
        {
            _modelTokenizers[model] = Tokenizer(spec);
        }

        var r = _options.Resilience;
        _invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = _options.Workers.ConnectTimeout,
            MaxConnectionsPerServer = _options.Workers.MaxConnectionsPerWorker,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            EnableMultipleHttp2Connections = true,
            ActivityHeadersPropagator = DistributedContextPropagator.CreateDefaultPropagator(),
        });
        // Our own timers (first byte, idle) fire first; YARP's activity timeout is only a backstop.
        var backstop = (r.FirstByteTimeout > r.IdleTimeout ? r.FirstByteTimeout : r.IdleTimeout) + TimeSpan.FromSeconds(30);
        _requestConfig = new ForwarderRequestConfig
        {
            ActivityTimeout = backstop,
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            AllowResponseBuffering = false,
        };
        _settings = new ProxySettings(r.IdleTimeout, _options.Limits.MaxSseEventBytes, _options.Limits.MaxResponseBytes);
        _retry = new ResiliencePipelineBuilder<AttemptOutcome> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<AttemptOutcome>
            {
                MaxRetryAttempts = r.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = r.RetryBaseDelay,
                MaxDelay = r.RetryMaxDelay,
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result is { Retryable: true }),
                OnRetry = args =>
                {
                    _metrics.RecordRetry(args.Outcome.Result?.Kind switch
                    {
                        AttemptKind.ConnectFailed => "connect",
                        AttemptKind.ServerError => "5xx",
                        AttemptKind.Throttled => "429",
                        AttemptKind.CircuitOpen => "circuit_open",
                        AttemptKind.Draining => "draining",
                        _ => "died_before_first_byte",
                    });
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>Recent routing decisions with predicted vs actual cached tokens (for /status).</summary>
    public RecentRegret Regret => _regret;

    /// <summary>The routing policy in use.</summary>
    public IRoutingPolicy Policy => _policy;

    /// <inheritdoc />
    public void Dispose() => _invoker.Dispose();

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
        try
        {
            tenant = _auth.Authenticate(ApiCredential.Of(context.Request.Headers));
            await HandleAuthenticatedAsync(context, endpoint, tenant, translation).ConfigureAwait(false);
        }
        finally
        {
            string name = translation?.EndpointName ?? endpoint switch
            {
                OpenAiEndpoint.ChatCompletions => "chat_completions",
                OpenAiEndpoint.Completions => "completions",
                _ => "embeddings",
            };
            bool hungUpEarly = context.RequestAborted.IsCancellationRequested && context.Features.Get<GatewayRequestContext>() is not { SawDone: true };
            _metrics.RecordRequest(tenant?.Path, hungUpEarly ? 499 : context.Response.StatusCode, name);
            if (tenant is not null && context.Features.Get<GatewayRequestContext>() is { } rc)
            {
                _metrics.RecordRequestDuration(tenant.Path, _time.GetElapsedTime(started), rc.Request.Stream);
                if (rc.FirstEventSeen)
                {
                    _metrics.RecordTimeToFirstToken(tenant.Path, rc.FirstEventAt);
                }

                if (rc.UsageSeen)
                {
                    _metrics.RecordCachedTokens(_policy.Name, rc.PromptTokens, rc.PredictedCachedTokens, rc.CachedTokens);
                    _regret.Record(rc.Worker?.Prefix, tenant.Team, rc.PromptTokens, rc.PredictedCachedTokens, rc.Route.Decision?.BestOtherCachedTokens ?? 0, rc.CachedTokens);
                }

                var span = Activity.Current;
                GatewayTracing.TagRequest(span, tenant.Path, rc.Request.Model, rc.SessionSource ?? "none");
                GatewayTracing.TagQueueWait(span, rc.QueueWait);
                GatewayTracing.TagRetries(span, Math.Max(0, rc.Attempts - 1));
                if (rc.Worker is { } w)
                {
                    GatewayTracing.TagRouting(span, w.Prefix, _policy.Name, rc.PredictedCachedTokens);
                }

                if (rc.UsageSeen)
                {
                    GatewayTracing.TagActualCachedTokens(span, rc.CachedTokens);
                }
            }
        }
    }

    private async Task HandleAuthenticatedAsync(HttpContext context, OpenAiEndpoint endpoint, Tenant? tenant, IRequestTranslation? translation)
    {
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(context, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return;
        }

        var (buffer, length, readError) = await ReadBodyAsync(context).ConfigureAwait(false);
        if (readError is not null)
        {
            await OpenAiErrors.WriteAsync(context, readError).ConfigureAwait(false);
            return;
        }

        try
        {
            ReadOnlyMemory<byte> body = buffer.AsMemory(0, length);
            if (translation is not null)
            {
                var (translated, translateError) = await translation.TranslateAsync(body, tenant, context.RequestAborted).ConfigureAwait(false);
                if (translateError is not null)
                {
                    await OpenAiErrors.WriteAsync(context, translateError).ConfigureAwait(false);
                    return;
                }

                body = translated;
            }

            await HandleParsedAsync(context, endpoint, tenant, body, translation is not null).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task HandleParsedAsync(HttpContext context, OpenAiEndpoint endpoint, Tenant tenant, ReadOnlyMemory<byte> body, bool translated)
    {
        if (!OpenAiRequestParser.TryParse(body, endpoint, out var parsed, out var parseError))
        {
            await OpenAiErrors.WriteAsync(context, parseError!).ConfigureAwait(false);
            return;
        }

        var request = parsed!;
        long requestId = Interlocked.Increment(ref s_nextRequestId);
        var (clientSession, sessionSource) = SessionIdentity.Resolve(context.Request.Headers, request);
        string? sessionId = SessionIdentity.Scope(tenant.Path, clientSession);
        var (served, modelError) = _models.Resolve(tenant, request.Model, sessionId, requestId);
        if (modelError is not null)
        {
            await OpenAiErrors.WriteAsync(context, modelError).ConfigureAwait(false);
            return;
        }

        string? renamed = served == request.Model ? null : served;
        request = renamed is null ? request : request with { Model = served };

        if (tenant.MaxTokens > 0 && request.MaxTokens > tenant.MaxTokens)
        {
            await OpenAiErrors.WriteAsync(context, OpenAiError.Invalid($"'max_tokens' is {request.MaxTokens}; this API key allows at most {tenant.MaxTokens}.", "max_tokens")).ConfigureAwait(false);
            return;
        }

        if (tenant.MaxN > 0 && request.N > tenant.MaxN)
        {
            await OpenAiErrors.WriteAsync(context, OpenAiError.Invalid($"'n' is {request.N}; this API key allows at most {tenant.MaxN}.", "n")).ConfigureAwait(false);
            return;
        }

        if (!PriorityRequest.TryParse(context.Request.Headers[PriorityRequest.Header], out var askedPriority))
        {
            await OpenAiErrors.WriteAsync(context, OpenAiError.Invalid($"Header '{PriorityRequest.Header}' must be 'interactive' or 'batch'.", PriorityRequest.Header)).ConfigureAwait(false);
            return;
        }

        long arrived = _time.GetTimestamp();
        bool strip = request.Stream && !request.IncludeUsage && endpoint != OpenAiEndpoint.Embeddings;
        bool dropSalt = BodyRewriter.MentionsCacheSalt(body.Span);
        var forwardBody = strip || dropSalt || renamed is not null ? BodyRewriter.Rewrite(body, strip, dropSalt, renamed) : body;
        var route = BuildRoute(request, tenant, sessionId, endpoint);
        var ctx = new GatewayRequestContext
        {
            RequestId = requestId,
            Tenant = tenant,
            Request = request,
            SessionId = sessionId,
            SessionSource = sessionSource,
            Route = route,
            ForwardBody = forwardBody,
            StripUsageChunk = strip,
            UpstreamPath = translated ? "/v1/chat/completions" : null,
            StartTimestamp = arrived,
            Time = _time,
        };
        context.Features.Set(ctx);
        var agentTurn = _agents?.OnArrived(ctx, context.Request.Headers);

        DispatchTicket? ticket = null;
        if (_scheduling is { Enabled: true } && HasEligibleWorker(request.Model))
        {
            var queued = _scheduling.CreateRequest(ctx.RequestId, tenant.Path, sessionId, request.Model, route.PromptTokens, route.ExpectedOutputTokens, _time.GetTimestamp(), null, route, ctx.Priority.QueueCredit, askedPriority);
            DispatchResult admitted;
            try
            {
                admitted = await _scheduling.Dispatcher.EnterAsync(queued, context.RequestAborted).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away while queued: the dispatcher removed the request and released its reservation.
                _metrics.RecordQueueRejection(tenant.Path, "client_cancelled");
                return;
            }

            if (admitted.Ticket is null)
            {
                var refusal = admitted.Refusal;
                _metrics.RecordQueueRejection(tenant.Path, RejectionReason(refusal.Outcome));
                await OpenAiErrors.WriteAsync(context, refusal.ToError(), refusal.RetryAfterSeconds).ConfigureAwait(false);
                return;
            }

            ticket = admitted.Ticket;
            if (ticket.Urgent && _scheduling.UnderSharePriority > 0)
            {
                // Under its share (hfair): the worker serves it ahead of over-share work (x-request-priority); on top of a
                // resumed agent turn's priority, so a resumed turn still goes before its tenant's fresh work.
                ctx.Priority = ctx.Priority with { EnginePriority = ReservedCapacity.EnginePriority(ctx.Priority.EnginePriority, urgent: true, _scheduling.UnderSharePriority) };
            }

            ctx.QueueWait = ticket.QueueWait;
            _metrics.RecordQueueWait(tenant.Path, ticket.QueueWait);
            var t = ticket;
            ctx.OnDataEvent = () => t.OnOutputTokens(1);
        }

        if (request.Stream)
        {
            string tenantPath = tenant.Path;
            ctx.OnTokenGap = gap => _metrics.RecordInterTokenLatency(tenantPath, gap);
        }

        if (sessionId is not null && _scheduling?.SharedSessions is { } sessions)
        {
            // Another replica may have served this session's last turn: route to the worker it bound (kv-aware affinity).
            route.SharedBinding = await sessions.GetSessionAsync(sessionId, context.RequestAborted).ConfigureAwait(false);
        }

        try
        {
            await ForwardAsync(context, ctx, request, tenant, agentTurn).ConfigureAwait(false);
        }
        finally
        {
            if (ticket is not null)
            {
                ctx.OnDataEvent = null;
                int output = ctx.UsageSeen ? ctx.CompletionTokens : ctx.DataEvents;
                ticket.Complete(ctx.UsageSeen ? ctx.CachedTokens : 0, output, ctx.Worker?.Info);
                _scheduling!.RecordSettled(tenant.Path, ticket.Request.ChargedCost);
            }
        }
    }


    private bool HasEligibleWorker(string model)
    {
        foreach (var i in _registry.GetCandidates(model).Infos)
        {
            if (i.Eligible)
            {
                return true;
            }
        }

        return false;
    }

    private static string RejectionReason(AdmissionOutcome o) => o switch
    {
        AdmissionOutcome.QueueFull => "queue_full",
        AdmissionOutcome.TenantQueueFull => "tenant_queue_full",
        AdmissionOutcome.RateLimited => "rate_limited",
        AdmissionOutcome.ConcurrencyLimited => "concurrency_limited",
        AdmissionOutcome.BudgetExhausted => "budget_exhausted",
        AdmissionOutcome.ModelNotAllowed => "model_not_allowed",
        AdmissionOutcome.Shed => "shed",
        AdmissionOutcome.TimedOut => "queue_timeout",
        AdmissionOutcome.QuotaStoreUnavailable => "quota_store_unavailable",
        _ => "other",
    };

    private async Task ForwardAsync(HttpContext context, GatewayRequestContext ctx, OpenAiRequest request, Tenant tenant, Gateway.Core.Agents.AgentIdentity? agentTurn)
    {
        var state = new AttemptState(this, context, ctx);
        AttemptOutcome outcome;
        try
        {
            outcome = await _retry.ExecuteAsync(static (s, _) => s.Handler.AttemptAsync(s), state, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            outcome = new AttemptOutcome(AttemptKind.ClientAborted);
        }

        if (ctx.UsageSeen)
        {
            _usage.Record(tenant.Path, ctx.PromptTokens, ctx.CachedTokens, ctx.CompletionTokens);
        }

        if (outcome.Kind == AttemptKind.Delivered)
        {
            _agents?.OnCompleted(agentTurn, ctx);
        }

        if (context.Response.HasStarted || outcome.Kind is AttemptKind.Delivered or AttemptKind.ClientAborted or AttemptKind.DiedMidStream)
        {
            return;
        }

        int retryAfter = _options.Resilience.RetryAfterSeconds;
        var error = outcome.Kind switch
        {
            AttemptKind.NoWorker or AttemptKind.CircuitOpen or AttemptKind.Draining => OpenAiErrors.NoHealthyWorker(request.Model),
            AttemptKind.Throttled => new OpenAiError(429, "All workers tried are overloaded. Retry later.", "rate_limit_error", null, "workers_overloaded"),
            AttemptKind.FirstByteTimeout => new OpenAiError(504, "The worker did not answer within the first-byte timeout.", "server_error", null, "upstream_timeout"),
            _ => new OpenAiError(502, $"The worker failed before answering ({Describe(outcome)}).", "server_error", null, "upstream_error"),
        };
        if (outcome.Kind is AttemptKind.NoWorker or AttemptKind.CircuitOpen)
        {
            Log.NoWorker(_logger, request.Model);
        }

        int? ra = outcome.Kind is AttemptKind.NoWorker or AttemptKind.CircuitOpen or AttemptKind.Throttled or AttemptKind.Draining
            ? (outcome.RetryAfter is { } d ? Math.Max(1, (int)Math.Ceiling(d.TotalSeconds)) : retryAfter)
            : null;
        await OpenAiErrors.WriteAsync(context, error, ra).ConfigureAwait(false);
    }

    private static string Describe(AttemptOutcome o) => o.Kind switch
    {
        AttemptKind.ServerError => $"status {o.UpstreamStatus}",
        AttemptKind.ConnectFailed => "connection failed",
        AttemptKind.DiedBeforeFirstByte => "connection lost",
        _ => o.Kind.ToString(),
    };

    private RouteRequest BuildRoute(OpenAiRequest request, Tenant tenant, string? sessionId, OpenAiEndpoint endpoint)
    {
        int blockSize = _options.Routing.BlockSize;
        var tokens = TokenBuffer.Rent();
        try
        {
            (_modelTokenizers.GetValueOrDefault(request.Model) ?? _tokenizer).Encode(request.PromptText, tokens);
            var span = System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens);
            ulong[] hashes = endpoint == OpenAiEndpoint.Embeddings ? [] : BlockHasher.ComputeChain(span, tenant.CacheSalt64, blockSize);
            return new RouteRequest
            {
                RequestId = 0,
                TenantPath = tenant.Path,
                SessionId = sessionId,
                BlockHashes = hashes,
                BlockSize = blockSize,
                PromptTokens = tokens.Count,
                ExpectedOutputTokens = request.MaxTokens ?? 256,
            };
        }
        finally
        {
            TokenBuffer.Return(tokens);
        }
    }

    private async ValueTask<AttemptOutcome> AttemptAsync(AttemptState s)
    {
        var context = s.Context;
        var ctx = s.Request;
        if (context.Response.HasStarted)
        {
            return AttemptOutcome.Delivered;
        }

        if (context.Response.StatusCode != StatusCodes.Status200OK)
        {
            context.Response.Clear();
        }

        ctx.ResetAttemptState();
        var candidates = _registry.GetCandidates(ctx.Request.Model);
        var (endpoint, decision) = Pick(candidates, ctx.Route, s.Tried);
        if (endpoint is null)
        {
            return new AttemptOutcome(AttemptKind.NoWorker);
        }

        s.Tried.Add(endpoint);
        ctx.Worker = endpoint;
        ctx.Attempts++;
        ctx.PredictedCachedTokens = decision.PredictedCachedTokens;
        // Policies answer a position in the candidate list; OnRouted/OnCompleted compare with WorkerInfo.Index.
        ctx.Route.Decision = decision with { WorkerIndex = endpoint.Info.Index };
        AttemptOutcome outcome;
        using var span = GatewayTracing.StartUpstream(endpoint.Prefix, ctx.Attempts);
        try
        {
            outcome = await endpoint.Breaker.ExecuteAsync(
                static (st, _) => st.Handler.SendOnceAsync(st),
                s,
                context.RequestAborted).ConfigureAwait(false);
        }
        catch (BrokenCircuitException)
        {
            endpoint.Refresh();
            outcome = new AttemptOutcome(AttemptKind.CircuitOpen, RetryAfter: TimeSpan.FromSeconds(1));
        }

        if (outcome.IsWorkerFault)
        {
            endpoint.OnRequestFailure(outcome.Kind == AttemptKind.ConnectFailed, _options.Health.PassiveFailureThreshold);
            Log.AttemptFailed(_logger, ctx.RequestId, endpoint.Prefix, outcome.Kind.ToString(), outcome.UpstreamStatus);
        }
        else if (outcome.Kind == AttemptKind.Delivered)
        {
            endpoint.OnRequestSuccess();
        }

        GatewayTracing.TagAttemptOutcome(span, outcome.Kind.ToString(), outcome.IsWorkerFault);
        s.Last = outcome;
        return outcome;
    }

    private (WorkerEndpoint? Endpoint, RouteDecision Decision) Pick(WorkerCandidates candidates, RouteRequest route, List<WorkerEndpoint> tried)
    {
        if (candidates.Endpoints.Length == 0)
        {
            return (null, RouteDecision.None);
        }

        if (tried.Count > 0)
        {
            // Prefer workers not tried yet; fall back to any eligible one when all were tried.
            var fresh = new List<WorkerEndpoint>(candidates.Endpoints.Length);
            foreach (var e in candidates.Endpoints)
            {
                if (!tried.Contains(e))
                {
                    fresh.Add(e);
                }
            }

            if (fresh.Count > 0)
            {
                var infos = fresh.ConvertAll(e => e.Info);
                var d = _policy.Route(route, infos);
                if (d.WorkerIndex >= 0)
                {
                    return (fresh[d.WorkerIndex], d);
                }
            }
        }

        long t0 = _time.GetTimestamp();
        var decision = _policy.Route(route, candidates.Infos);
        _metrics.RecordRoutingDecision(_policy.Name, _time.GetElapsedTime(t0));
        return decision.WorkerIndex < 0 ? (null, decision) : (candidates.Endpoints[decision.WorkerIndex], decision);
    }

    private async ValueTask<AttemptOutcome> SendOnceAsync(AttemptState s)
    {
        var context = s.Context;
        var ctx = s.Request;
        var endpoint = ctx.Worker!;
        var info = endpoint.Info;
        int uncached = Math.Max(0, ctx.Route.PromptTokens - ctx.PredictedCachedTokens);
        int contextTokens = ctx.Route.PromptTokens;
        bool reachedDecode = false;
        info.OnDispatched(uncached);
        _scheduling?.OnPrefillChanged();
        _policy.OnRouted(ctx.Route, info);
        if (ctx.SessionId is { } session && _scheduling?.SharedSessions is { } sessions)
        {
            // Bind (or rebind) the session in shared state so every replica sends its next turn here. A new or moved
            // binding is written before the request is forwarded, so the next turn (sent after this answer, maybe to
            // another replica) reads it: one Redis round trip on a session's first turn and on a move. An unchanged
            // binding only refreshes its TTL, off the request's path (a failed write is kept and retried by the store).
            var write = BindSessionAsync(sessions, session, info.Id);
            bool changed = !string.Equals(ctx.Route.SharedBinding, info.Id, StringComparison.Ordinal);
            ctx.Route.SharedBinding = info.Id;
            if (changed)
            {
                await write.ConfigureAwait(false);
            }
        }
        ctx.OnFirstEvent = () =>
        {
            reachedDecode = true;
            info.OnFirstToken(uncached, contextTokens);
            _scheduling?.OnPrefillChanged();
        };

        using var firstByte = new CancellationTokenSource(_options.Resilience.FirstByteTimeout);
        var transformer = new GatewayTransformer(ctx, firstByte, _settings);
        ForwarderError error;
        try
        {
            error = await _forwarder.SendAsync(context, endpoint.Prefix, _invoker, _requestConfig, transformer, firstByte.Token).ConfigureAwait(false);
        }
        finally
        {
            ctx.OnFirstEvent = null;
            info.OnCompleted(uncached, contextTokens, reachedDecode);
        }

        if (transformer.Relay is { } relay)
        {
            await relay.DisposeAsync().ConfigureAwait(false);
        }

        _policy.OnCompleted(ctx.Route, info, ctx.CachedTokens);

        if (context.RequestAborted.IsCancellationRequested)
        {
            // A client that hangs up once the stream has ended (Codex closes at response.completed) got the whole answer.
            return ctx.SawDone && transformer.Relay is { Failed: false } ? AttemptOutcome.Delivered : new AttemptOutcome(AttemptKind.ClientAborted);
        }

        if (transformer.UpstreamDraining)
        {
            endpoint.Info.Draining = true; // passive: no new picks until its state says otherwise
            return new AttemptOutcome(AttemptKind.Draining, 503);
        }

        if (transformer.HeldBackStatus != 0)
        {
            return new AttemptOutcome(transformer.HeldBackStatus == 429 ? AttemptKind.Throttled : AttemptKind.ServerError, transformer.HeldBackStatus, RetryAfter: transformer.RetryAfter);
        }

        if (error == ForwarderError.None)
        {
            if (transformer.Relay is { Failed: true })
            {
                Log.StreamFailed(_logger, ctx.RequestId, endpoint.Prefix, ctx.StreamError ?? "?");
                return new AttemptOutcome(AttemptKind.DiedMidStream, Detail: ctx.StreamError);
            }

            return AttemptOutcome.Delivered;
        }

        if (context.Response.HasStarted)
        {
            // Bytes reached the client: never retried. (The relay turns worker-side breaks into error events, so this
            // is a failure writing to the client.)
            return new AttemptOutcome(AttemptKind.ClientAborted, Detail: error.ToString());
        }

        if (firstByte.IsCancellationRequested)
        {
            return new AttemptOutcome(AttemptKind.FirstByteTimeout);
        }

        if (transformer.FailedBeforeFirstByte || error == ForwarderError.ResponseHeaders)
        {
            return new AttemptOutcome(AttemptKind.DiedBeforeFirstByte, Detail: error.ToString());
        }

        return error is ForwarderError.Request or ForwarderError.RequestTimedOut or ForwarderError.RequestBodyDestination
            ? new AttemptOutcome(AttemptKind.ConnectFailed, Detail: error.ToString())
            : new AttemptOutcome(AttemptKind.DiedBeforeFirstByte, Detail: error.ToString());
    }

    private async Task BindSessionAsync(State.IStateStore store, string session, string worker)
    {
        try
        {
            await store.SetSessionAsync(session, worker, _options.State.SessionTtl).ConfigureAwait(false);
        }
        catch (Exception ex) when (State.RedisConnection.IsUnavailable(ex))
        {
            // the store keeps the binding locally and writes it when Redis returns
        }
    }

    /// <summary>Reads the request body into a pooled buffer (return it to <see cref="ArrayPool{T}.Shared"/>), or the 413 to answer.</summary>
    internal async Task<(byte[] Buffer, int Length, OpenAiError? Error)> ReadBodyAsync(HttpContext context)
    {
        long limit = _options.Limits.MaxBodyBytes;
        long hard = HardBodyLimit(limit);
        long? declared = context.Request.ContentLength;
        var sizeFeature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false })
        {
            sizeFeature.MaxRequestBodySize = hard;
        }

        if (declared > limit)
        {
            if (declared <= hard)
            {
                await DrainAsync(context).ConfigureAwait(false);
            }

            return ([], 0, OpenAiError.TooLarge(limit));
        }

        var buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 ? (int)declared.Value : 16 * 1024);
        int length = 0;
        try
        {
            var body = context.Request.Body;
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length >= limit)
                    {
                        // Probe for one more byte: exactly at the limit is fine, beyond is not.
                        var probe = new byte[1];
                        if (await body.ReadAsync(probe, context.RequestAborted).ConfigureAwait(false) > 0)
                        {
                            ArrayPool<byte>.Shared.Return(buffer);
                            await DrainAsync(context).ConfigureAwait(false);
                            return ([], 0, OpenAiError.TooLarge(limit));
                        }

                        break;
                    }

                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit, (long)buffer.Length * 2));
                    Buffer.BlockCopy(buffer, 0, bigger, 0, length);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                int n = await body.ReadAsync(buffer.AsMemory(length), context.RequestAborted).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                length += n;
                if (length > limit)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    await DrainAsync(context).ConfigureAwait(false);
                    return ([], 0, OpenAiError.TooLarge(limit));
                }
            }

            return (buffer, length, null);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return ([], 0, OpenAiError.TooLarge(limit));
        }
    }

    /// <summary>Kestrel's hard body limit for a soft one: room to read (and drop) an oversized upload before the 413.</summary>
    internal static long HardBodyLimit(long limit) => limit > long.MaxValue / 2 ? long.MaxValue : limit * 2;

    /// <summary>
    /// Reads and drops the rest of an oversized upload (bounded by the hard limit), so the client finishes sending
    /// and reads the 413 instead of a reset connection; past the hard limit Kestrel closes the connection.
    /// </summary>
    private static async Task DrainAsync(HttpContext context)
    {
        var scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (await context.Request.Body.ReadAsync(scratch, context.RequestAborted).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (BadHttpRequestException)
        {
            // over the hard limit
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    private sealed class AttemptState(ProxyHandler handler, HttpContext context, GatewayRequestContext request)
    {
        public ProxyHandler Handler { get; } = handler;

        public HttpContext Context { get; } = context;

        public GatewayRequestContext Request { get; } = request;

        public List<WorkerEndpoint> Tried { get; } = new(2);

        public AttemptOutcome? Last { get; set; }
    }

    private static class TokenBuffer
    {
        [ThreadStatic]
        private static List<int>? t_cached;

        public static List<int> Rent()
        {
            var l = t_cached ?? new List<int>(1024);
            t_cached = null;
            return l;
        }

        public static void Return(List<int> l)
        {
            if (l.Capacity <= 1 << 20)
            {
                l.Clear();
                t_cached = l;
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.AttemptFailed, Level = LogLevel.Warning, Message = "Request {RequestId}: attempt on {Worker} failed: {Kind} (status {Status})")]
        public static partial void AttemptFailed(ILogger logger, long requestId, string worker, string kind, int status);

        [LoggerMessage(EventId = EventIds.StreamFailed, Level = LogLevel.Warning, Message = "Request {RequestId}: stream from {Worker} ended with an error event ({Code})")]
        public static partial void StreamFailed(ILogger logger, long requestId, string worker, string code);

        [LoggerMessage(EventId = EventIds.NoWorker, Level = LogLevel.Warning, Message = "No eligible worker for model {Model}")]
        public static partial void NoWorker(ILogger logger, string model);
    }
}
