using System.Diagnostics;
using Gateway.Configuration;
using Gateway.Core.Routing;
using Gateway.Fleet;
using Gateway.Scheduling;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.ObjectPool;
using Microsoft.Extensions.Options;
using Polly;
using Polly.CircuitBreaker;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The fourth stage: attempts under the retry (<see cref="AttemptRetry"/>). The first attempt goes to the worker the fair
/// queue released the request for while that worker is eligible (<see cref="DispatchRouting"/>); otherwise, and on every
/// retry, the attempt routes (a retry prefers a worker not tried yet), runs under the chosen worker's circuit breaker, forwards with YARP's <see cref="IHttpForwarder"/>
/// through <see cref="GatewayTransformer"/> (5xx/429 held back so nothing reaches the client before a retry), and
/// keeps the worker's load record, passive health, session binding and the routing policy's view up to date.
/// </summary>
public sealed partial class ForwardingStage
{
    private readonly IHttpForwarder _forwarder;
    private readonly WorkerConnections _connections;
    private readonly AttemptRetry _retry;
    private readonly WorkerRegistry _registry;
    private readonly IRoutingPolicy _policy;
    private readonly GatewayScheduling? _scheduling;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly GatewayOptions _options;
    private readonly ILogger<ForwardingStage> _logger;
    private readonly ObjectPool<CancellationTokenSource> _firstByteTimers = new DefaultObjectPool<CancellationTokenSource>(new FirstByteTimerPolicy(), 1024);

    /// <summary>Creates the stage (singleton).</summary>
    public ForwardingStage(
        IHttpForwarder forwarder,
        WorkerConnections connections,
        AttemptRetry retry,
        WorkerRegistry registry,
        IRoutingPolicy policy,
        GatewayMetrics metrics,
        TimeProvider time,
        IOptions<GatewayOptions> options,
        ILogger<ForwardingStage> logger,
        GatewayScheduling? scheduling = null)
    {
        _forwarder = forwarder;
        _connections = connections;
        _retry = retry;
        _registry = registry;
        _policy = policy;
        _metrics = metrics;
        _time = time;
        _options = options.Value;
        _logger = logger;
        _scheduling = scheduling;
    }

    /// <summary>
    /// Sends the request to workers until one answers or no retry is left; how the last attempt ended.
    /// <paramref name="pickedFor"/>: the worker the fair queue released it for (<see cref="DispatchTicket.PickedFor"/>).
    /// </summary>
    public async Task<AttemptOutcome> SendAsync(HttpContext context, GatewayRequestContext ctx, WorkerInfo? pickedFor = null)
    {
        if (ctx.SessionId is { } sessionId && _scheduling?.SharedSessions is { } sessions)
        {
            // Another replica may have served this session's last turn: route to the worker it bound (kv-aware affinity).
            ctx.Route.SharedBinding = await sessions.GetSessionAsync(sessionId, context.RequestAborted).ConfigureAwait(false);
        }

        var state = new AttemptState(this, context, ctx) { PickedFor = pickedFor };
        // One pooled Polly context for the retry and the worker's breaker, and the outcome-based calls: the
        // convenience overloads would rent a context per pipeline and box two more state machines per request.
        var resilience = ResilienceContextPool.Shared.Get(context.RequestAborted);
        try
        {
            var outcome = await _retry.Pipeline.ExecuteOutcomeAsync(static (rc, s) => s.Stage.AttemptAsync(rc, s), resilience, state).ConfigureAwait(false);
            outcome.ThrowIfException();
            return outcome.Result!;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return new AttemptOutcome(AttemptKind.ClientAborted);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(resilience);
        }
    }

    /// <summary>One attempt, as Polly's outcome-based callbacks want it: an exception is returned, never thrown.</summary>
    private async ValueTask<Outcome<AttemptOutcome>> AttemptAsync(ResilienceContext resilience, AttemptState s)
    {
        var context = s.Context;
        var ctx = s.Request;
        if (context.Response.HasStarted)
        {
            return Outcome.FromResult(AttemptOutcome.Delivered);
        }

        WorkerEndpoint? endpoint;
        Activity? span = null;
        try
        {
            if (context.Response.StatusCode != StatusCodes.Status200OK)
            {
                context.Response.Clear();
            }

            ctx.ResetAttemptState();
            var candidates = _registry.GetCandidates(ctx.Request.Model);
            RouteDecision decision;
            (endpoint, decision) = Pick(candidates, ctx.Route, s);
            if (endpoint is null)
            {
                return Outcome.FromResult(new AttemptOutcome(AttemptKind.NoWorker));
            }

            s.AddTried(endpoint);
            ctx.Worker = endpoint;
            ctx.Attempts++;
            ctx.PredictedCachedTokens = decision.PredictedCachedTokens;
            // Policies answer a position in the candidate list; OnRouted/OnCompleted compare with WorkerInfo.Index.
            ctx.Route.Decision = decision with { WorkerIndex = endpoint.Info.Index };
            span = GatewayTracing.StartUpstream(endpoint.Prefix, ctx.Attempts);
            var sent = await endpoint.Breaker.ExecuteOutcomeAsync(static (_, st) => st.Stage.SendOnceAsync(st), resilience, s).ConfigureAwait(false);
            AttemptOutcome outcome;
            if (sent.Exception is BrokenCircuitException)
            {
                endpoint.Refresh();
                outcome = new AttemptOutcome(AttemptKind.CircuitOpen, RetryAfter: TimeSpan.FromSeconds(1));
            }
            else if (sent.Exception is not null)
            {
                return sent;
            }
            else
            {
                outcome = sent.Result!;
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
            return Outcome.FromResult(outcome);
        }
        catch (Exception ex)
        {
            return Outcome.FromException<AttemptOutcome>(ex);
        }
        finally
        {
            span?.Dispose();
        }
    }

    private (WorkerEndpoint? Endpoint, RouteDecision Decision) Pick(WorkerCandidates candidates, RouteRequest route, AttemptState tried)
    {
        if (candidates.Endpoints.Length == 0)
        {
            return (null, RouteDecision.None);
        }

        if (tried.AnyTried)
        {
            // Prefer workers not tried yet; fall back to any eligible one when all were tried.
            var fresh = new List<WorkerEndpoint>(candidates.Endpoints.Length);
            foreach (var e in candidates.Endpoints)
            {
                if (!tried.Tried(e))
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
        var decision = DispatchRouting.Route(_policy, route, candidates.Infos, tried.AnyTried ? null : BreakerClosed(candidates, tried.PickedFor));
        _metrics.RecordRoutingDecision(_policy.Name, _time.GetElapsedTime(t0));
        return decision.WorkerIndex < 0 ? (null, decision) : (candidates.Endpoints[decision.WorkerIndex], decision);
    }

    /// <summary><paramref name="worker"/> unless its circuit is open (the break may not yet show in its health), else null.</summary>
    private static WorkerInfo? BreakerClosed(WorkerCandidates candidates, WorkerInfo? worker)
    {
        foreach (var e in candidates.Endpoints)
        {
            if (ReferenceEquals(e.Info, worker))
            {
                return e.CircuitOpen ? null : worker;
            }
        }

        return null;
    }

    /// <summary>Forwards once to the attempt's worker (under its breaker); an exception is returned, never thrown.</summary>
    private async ValueTask<Outcome<AttemptOutcome>> SendOnceAsync(AttemptState s)
    {
        try
        {
            var context = s.Context;
            var ctx = s.Request;
            var endpoint = ctx.Worker!;
            var info = endpoint.Info;
            s.BeginAttempt(info, uncached: Math.Max(0, ctx.Route.PromptTokens - ctx.PredictedCachedTokens), contextTokens: ctx.Route.PromptTokens);
            info.OnDispatched(s.Uncached);
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

            ctx.OnFirstEvent = s.OnFirstEvent;
            var firstByte = _firstByteTimers.Get();
            try
            {
                firstByte.CancelAfter(_connections.FirstByteTimeout);
                var transformer = new GatewayTransformer(ctx, firstByte, _connections.Settings);
                ForwarderError error;
                try
                {
                    error = await _forwarder.SendAsync(context, endpoint.Prefix, _connections.Invoker, _connections.RequestConfig, transformer, firstByte.Token).ConfigureAwait(false);
                }
                finally
                {
                    ctx.OnFirstEvent = null;
                    info.OnCompleted(s.Uncached, s.ContextTokens, s.ReachedDecode);
                    transformer.ReleaseBufferedAnswer();
                }

                if (transformer.Relay is { } relay)
                {
                    await relay.DisposeAsync().ConfigureAwait(false);
                }

                _policy.OnCompleted(ctx.Route, info, ctx.CachedTokens);
                return Outcome.FromResult(Classify(context, ctx, transformer, error, firstByte.IsCancellationRequested));
            }
            finally
            {
                // The forwarder, the transformer and the relay are done with the token: an untriggered timer source is
                // reset and reused by a later attempt (one timer per attempt in flight, not one allocated per attempt).
                if (firstByte.TryReset())
                {
                    _firstByteTimers.Return(firstByte);
                }
                else
                {
                    firstByte.Dispose();
                }
            }
        }
        catch (Exception ex)
        {
            return Outcome.FromException<AttemptOutcome>(ex);
        }
    }

    private AttemptOutcome Classify(HttpContext context, GatewayRequestContext ctx, GatewayTransformer transformer, ForwarderError error, bool firstByteTimedOut)
    {
        if (context.RequestAborted.IsCancellationRequested)
        {
            // A client that hangs up once the stream has ended (Codex closes at response.completed) got the whole answer.
            return ctx.SawDone && transformer.Relay is { Failed: false } ? AttemptOutcome.Delivered : new AttemptOutcome(AttemptKind.ClientAborted);
        }

        if (transformer.UpstreamDraining)
        {
            ctx.Worker!.Info.Draining = true; // passive: no new picks until its state says otherwise
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
                Log.StreamFailed(_logger, ctx.RequestId, ctx.Worker!.Prefix, ctx.StreamError ?? "?");
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

        if (firstByteTimedOut)
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

    /// <summary>One request's attempts: the workers tried, and the current attempt's charge on its worker.</summary>
    private sealed class AttemptState
    {
        private WorkerEndpoint? _first;
        private List<WorkerEndpoint>? _more;
        private WorkerInfo? _worker;

        public AttemptState(ForwardingStage stage, HttpContext context, GatewayRequestContext request)
        {
            Stage = stage;
            Context = context;
            Request = request;
            OnFirstEvent = FirstEvent;
        }

        public ForwardingStage Stage { get; }

        public HttpContext Context { get; }

        public GatewayRequestContext Request { get; }

        /// <summary>Moves the worker's charge from prefill to decode at the first token (one delegate per request).</summary>
        public Action OnFirstEvent { get; }

        public int Uncached { get; private set; }

        public int ContextTokens { get; private set; }

        public bool ReachedDecode { get; private set; }

        public bool AnyTried => _first is not null;

        /// <summary>The worker the fair queue released the request for (first attempt only).</summary>
        public WorkerInfo? PickedFor { get; init; }

        public bool Tried(WorkerEndpoint e) => ReferenceEquals(_first, e) || (_more?.Contains(e) ?? false);

        public void AddTried(WorkerEndpoint e)
        {
            if (_first is null)
            {
                _first = e;
            }
            else
            {
                (_more ??= new(2)).Add(e);
            }
        }

        public void BeginAttempt(WorkerInfo worker, int uncached, int contextTokens)
        {
            _worker = worker;
            Uncached = uncached;
            ContextTokens = contextTokens;
            ReachedDecode = false;
        }

        private void FirstEvent()
        {
            ReachedDecode = true;
            _worker!.OnFirstToken(Uncached, ContextTokens);
            Stage._scheduling?.OnPrefillChanged();
        }
    }

    /// <summary>Pooled first-byte timer sources: only reset (untriggered) ones are handed back.</summary>
    private sealed class FirstByteTimerPolicy : PooledObjectPolicy<CancellationTokenSource>
    {
        public override CancellationTokenSource Create() => new();

        public override bool Return(CancellationTokenSource obj) => true;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.AttemptFailed, Level = LogLevel.Warning, Message = "Request {RequestId}: attempt on {Worker} failed: {Kind} (status {Status})")]
        public static partial void AttemptFailed(ILogger logger, long requestId, string worker, string kind, int status);

        [LoggerMessage(EventId = EventIds.StreamFailed, Level = LogLevel.Warning, Message = "Request {RequestId}: stream from {Worker} ended with an error event ({Code})")]
        public static partial void StreamFailed(ILogger logger, long requestId, string worker, string code);
    }
}
