using System.Net.Http.Json;
using Gateway.Core.Agents;
using Gateway.Core.Collections;
using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Gateway.Fleet;
using Gateway.Proxy;
using Microsoft.Extensions.Options;
using Worker.Contract;

namespace Gateway.Agents;

/// <summary>
/// Gateway side of issue 7: identifies the agent session of each request (explicit ids, else the prefix chain), closes
/// the session's open gap when its next turn arrives, and when a turn is delivered classifies it from the relayed
/// finish_reason / tool-call names, asks the retention policy what to do and, in enabled mode, sends
/// POST /worker/kv/retain or /worker/kv/release to the worker that served the turn (fire-and-forget, with a timeout;
/// never on the client's path). A timer (every <see cref="RenewPeriod"/>) lets the policy renew pins that run out within
/// <see cref="RenewLead"/> while their session has not come back (<see cref="IRetentionPolicy.OnPinsExpiring"/>); in enabled mode
/// each renewal is a retain with the new TTL and value, in shadow mode it is only scored. Thread-safe (one lock around
/// the pure policy objects).
/// </summary>
public sealed partial class AgentRetentionService : IDisposable
{
    private const int UnknownPoolBlocks = 65_536;
    private const double NominalPrefillTokensPerSecond = 10_000;
    private const long MaxRememberedHashes = 4 * 1024 * 1024;
    private const int MaxPinnedSessions = 65_536;

    /// <summary>How often the renewal timer asks the policy about pins running out.</summary>
    public static readonly TimeSpan RenewPeriod = TimeSpan.FromSeconds(0.5);

    /// <summary>How far ahead of a pin's expiry it is renewed (two periods: the hint has at least half a second to arrive).</summary>
    public static readonly TimeSpan RenewLead = TimeSpan.FromSeconds(1);

    private readonly object _lock = new();
    private readonly List<RetentionAction> _actions = new(2); // one turn's decisions, used under _lock only
    private readonly AgentSessionTracker _tracker;
    private readonly IRetentionPolicy _policy;
    private readonly ResumedTurnPriority? _priority;
    private readonly AgentRetentionOptions _options;
    private readonly ILogger<AgentRetentionService> _logger;
    private readonly HttpClient _http;
    private readonly List<WorkerEndpoint> _workers = [];
    // Hashes of each live pin and the session id the worker knows it by (a release from another session's turn, or for a
    // session the worker does not know, goes by hash; a renewal re-pins them), at most MaxRememberedHashes in all (8 bytes
    // each), oldest pins forgotten first (they expire by TTL anyway).
    private readonly BoundedMap<string, PinnedContext> _lastHashes;
    // (worker index, last block hash of a live pin) → session, to tell the policy which pin a worker's pin_dropped event
    // ended; bounded like the policy's open gaps.
    private readonly BoundedMap<(int Worker, ulong Hash), string> _pinByLastHash;
    private readonly TimeProvider _time;
    private readonly ITimer? _renewTimer;
    private readonly Telemetry.GatewayMetrics? _metrics;
    private readonly PrefetchScheduler _prefetch;
    private readonly string[] _tags;
    private long _hintsSent, _hintsFailed, _resumedTurns, _sideCalls;

    /// <summary>Creates the service; with <paramref name="metrics"/> its shadow score is exported on the gateway's meter.</summary>
    public AgentRetentionService(IOptions<AgentRetentionOptions> options, TimeProvider time, ILogger<AgentRetentionService> logger, Telemetry.GatewayMetrics? metrics = null)
    {
        _metrics = metrics;
        _options = options.Value;
        _logger = logger;
        if (_options.MemoryCostWeight is < 0 || _options.PinBudgetFraction is <= 0 or > 1 || _options.MaxRenewals is < 0 || _options.MaxPendingPrefetches < 1)
        {
            throw new OptionsValidationException(AgentRetentionOptions.SectionName, typeof(AgentRetentionOptions),
                ["Gateway:Agents:MemoryCostWeight must be >= 0, Gateway:Agents:PinBudgetFraction in (0, 1], Gateway:Agents:MaxRenewals >= 0 and Gateway:Agents:MaxPendingPrefetches >= 1"]);
        }

        if (_options.EvictionAge is not null && !RetentionPolicies.TryParseEvictionAge(_options.EvictionAge, out _))
        {
            throw new OptionsValidationException(AgentRetentionOptions.SectionName, typeof(AgentRetentionOptions),
                ["Gateway:Agents:EvictionAge must be off, cover or shift"]);
        }

        var retention = _options.PolicyOptions();
        if (_options.SessionIdleTimeout < TimeSpan.FromSeconds(retention.MaxTtlSeconds))
        {
            throw new OptionsValidationException(AgentRetentionOptions.SectionName, typeof(AgentRetentionOptions),
                [$"Gateway:Agents:SessionIdleTimeout must be at least the longest pin ({retention.MaxTtlSeconds} s)"]);
        }

        if (_options.SingleTurnIdleTimeout <= TimeSpan.Zero || _options.SingleTurnIdleTimeout > _options.SessionIdleTimeout)
        {
            throw new OptionsValidationException(AgentRetentionOptions.SectionName, typeof(AgentRetentionOptions),
                ["Gateway:Agents:SingleTurnIdleTimeout must be more than 0 and at most Gateway:Agents:SessionIdleTimeout"]);
        }

        _time = time;
        _policy = RetentionPolicies.Create(_options.Policy, time, retention);
        _tracker = new AgentSessionTracker(time: time, maxIdle: _options.SessionIdleTimeout, singleTurnIdle: _options.SingleTurnIdleTimeout);
        _lastHashes = new(MaxRememberedHashes, StringComparer.Ordinal, weight: static h => h.Hashes.Length, time: time, maxIdle: _options.SessionIdleTimeout);
        _pinByLastHash = new(MaxPinnedSessions, time: time, maxIdle: _options.SessionIdleTimeout);
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60) }) { Timeout = _options.HintTimeout };
        _prefetch = new PrefetchScheduler(_http, time, _options.MaxPendingPrefetches, logger);
        if (_options.Mode is not ("shadow" or "enabled" or "off"))
        {
            throw new OptionsValidationException(AgentRetentionOptions.SectionName, typeof(AgentRetentionOptions), [$"Gateway:Agents:Mode must be shadow, enabled or off (got '{_options.Mode}')"]);
        }

        if (_options.ResumedTurnPriority)
        {
            try
            {
                _priority = new ResumedTurnPriority(new ProgramPriorityOptions
                {
                    EnginePriority = _options.ResumedEnginePriority,
                    QueueCredit = _options.ResumedQueueCredit,
                    MaxGapSeconds = _options.ResumedMaxGapSeconds,
                    PinnedOnly = _options.ResumedPinnedOnly,
                });
            }
            catch (ArgumentOutOfRangeException e)
            {
                throw new OptionsValidationException(AgentRetentionOptions.SectionName, typeof(AgentRetentionOptions),
                    [$"Gateway:Agents:ResumedEnginePriority must be 0..1000, ResumedQueueCredit a finite number >= 0 and ResumedMaxGapSeconds > 0 ({e.Message})"]);
            }
        }

        // Labels: the policy name and mode only (both from config: bounded); never sessions or tenants.
        _tags = [_policy.Name, _options.Mode];
        if (metrics is not null && Active)
        {
            CreateInstruments(metrics);
        }

        if (Active && _options.PolicyOptions().MaxRenewals > 0 && _policy is PredictiveRetentionPolicy)
        {
            _renewTimer = time.CreateTimer(static s => ((AgentRetentionService)s!).RenewExpiring(), this, RenewPeriod, RenewPeriod);
        }
    }

    /// <summary>
    /// Asks the policy about pins running out within <see cref="RenewLead"/> and (enabled mode) sends the renewals it
    /// decides; the timer calls it every <see cref="RenewPeriod"/>.
    /// </summary>
    public void RenewExpiring()
    {
        var actions = new List<RetentionAction>();
        lock (_lock)
        {
            _policy.OnPinsExpiring(_time.GetUtcNow() + RenewLead, actions);
            if (!Enabled)
            {
                return;
            }

            foreach (var a in actions)
            {
                var target = _workers[a.Worker];
                if (a.Kind == RetentionActionKind.Release)
                {
                    // A pin the budget evicted for a renewal: released by hash, as in OnCompleted.
                    if (_lastHashes.Remove(a.SessionId, out var released))
                    {
                        _ = SendAsync(target, a, null, released.Hashes, partial: false);
                    }

                    continue;
                }

                // Re-pin the same blocks under the same key: the worker replaces the session's pin with the new TTL.
                if (_lastHashes.TryGetValue(a.SessionId, out var pinned))
                {
                    _ = SendAsync(target, a, pinned.WorkerSession, pinned.Hashes, partial: true);
                }
            }
        }
    }

    /// <summary>True when hints are sent to workers.</summary>
    public bool Enabled => _options.Mode == "enabled";

    /// <summary>False when the agent layer is switched off entirely.</summary>
    public bool Active => _options.Mode != "off";

    /// <summary>Policy name.</summary>
    public string PolicyName => _policy.Name;

    /// <summary>Turns that closed a tool gap and were given the resumed-turn priority.</summary>
    public long ResumedTurns => Interlocked.Read(ref _resumedTurns);

    /// <summary>Side calls (<see cref="AgentIdentity.Detached"/> requests answered without tool calls): they neither closed nor opened a gap.</summary>
    public long SideCalls => Interlocked.Read(ref _sideCalls);

    /// <summary>Hint requests sent / failed (enabled mode).</summary>
    public (long Sent, long Failed) Hints => (Interlocked.Read(ref _hintsSent), Interlocked.Read(ref _hintsFailed));

    /// <summary>Prefetches scheduled, sent, blocks copied back, failed, cancelled (the turn came first), skipped, dropped (<see cref="PrefetchScheduler.Counts"/>).</summary>
    public (long Scheduled, long Sent, long LoadedBlocks, long Failed, long Cancelled, long Skipped, long Dropped) Prefetches => _prefetch.Counts;

    /// <summary>The policy's shadow-mode score (live object; read it while no turn is being recorded, or accept a torn read).</summary>
    public RetentionStats Stats => _policy.Stats;

    /// <summary>
    /// Called when a request has been parsed (before it is queued): resolves its session, closes the session's open gap
    /// and, with <see cref="AgentRetentionOptions.ResumedTurnPriority"/>, sets <see cref="GatewayRequestContext.Priority"/>.
    /// </summary>
    public AgentIdentity? OnArrived(GatewayRequestContext ctx, IHeaderDictionary headers)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        if (!Active || ctx.Route.BlockHashes.Length == 0)
        {
            return null;
        }

        // Client ids are scoped to the tenant like ctx.SessionId (SessionIdentity.Scope): tenants never share a session.
        string path = ctx.Tenant.Path;
        string? parent = SessionIdentity.Scope(path, FirstHeader(headers, "x-parent-session-id", "x-claude-code-parent-session-id", "x-parent-agent-id"));
        string kind = ctx.SessionSource switch
        {
            "x-claude-code-session-id" => "claude-code",
            "session_id" or SessionIdentity.CodexMetadataHeader => "codex",
            _ => headers.ContainsKey("x-opencode-session-id") ? "opencode" : "unknown",
        };
        string? explicitId = ctx.SessionId ?? SessionIdentity.Scope(path, FirstHeader(headers, "x-opencode-session-id"));

        // A program stream is (tenant, session, model): KV lives per model, and a client's side calls to another model in
        // the same session (Claude Code asks its small/fast model for titles and command checks while a tool runs) must
        // neither close the main model's gap nor open one that releases its pin.
        const string Separator = "\u001f";
        string model = ctx.Request.Model;
        if (explicitId is not null)
        {
            explicitId = string.Concat(explicitId, Separator, model);
        }

        lock (_lock)
        {
            var id = _tracker.Resolve(string.Concat(path, Separator, model), explicitId, parent, parent is null ? kind : "subagent", ctx.Route.BlockHashes);
            // A side call (id.Detached) leaves the session's gap open: the main line has not come back yet.
            var gap = id.Detached ? ClosedGap.None : _policy.OnTurnArrived(id.SessionId, ctx.Request.PriorTurns);
            if (!id.Detached)
            {
                _prefetch.Cancel(id.SessionId); // the turn came first: the worker reloads what is still in its host tier
            }
            if (_priority is not null)
            {
                ctx.Priority = _priority.Decide(gap);
                if (ctx.Priority.Resumed)
                {
                    Interlocked.Increment(ref _resumedTurns);
                }
            }

            return id;
        }
    }

    /// <summary>Called when a turn was delivered: decides and (enabled mode) sends the hints without waiting for them.</summary>
    public void OnCompleted(AgentIdentity? identity, GatewayRequestContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        if (identity is not { } id || ctx.Worker is not { } worker || !ctx.FirstEventSeen)
        {
            return;
        }

        var info = worker.Info;
        var hashes = ctx.Route.BlockHashes;
        int prompt = ctx.UsageSeen ? ctx.PromptTokens : ctx.Route.PromptTokens;
        var outcome = TurnClassifier.Classify(ctx.FinishReason, ctx.ToolCalls);
        lock (_lock)
        {
            int sessionTurn = id.Turn;
            if (id.Detached)
            {
                if (outcome.Gap != GapKind.Tool)
                {
                    Interlocked.Increment(ref _sideCalls); // a side call's answer opens no gap and sends no hint
                    return;
                }

                sessionTurn = _tracker.Adopt(id.SessionId, hashes); // it ended with tool calls: the session goes on from here
            }

            int index = _workers.IndexOf(worker);
            if (index < 0)
            {
                _workers.Add(worker);
                index = _workers.Count - 1;
            }

            var turn = new TurnCompletion
            {
                SessionId = id.SessionId,
                Tenant = ctx.Tenant.Path,
                AgentKind = id.AgentKind,
                Outcome = outcome,
                Worker = index,
                Blocks = hashes.Length,
                // Until the worker's state has been read, assume a large pool and a nominal prefill rate.
                WorkerKvBlocks = info.KvBlocksTotal > 0 ? info.KvBlocksTotal : UnknownPoolBlocks,
                PrefillSeconds = prompt / (info.PrefillTokensPerSecond > 0 ? info.PrefillTokensPerSecond : NominalPrefillTokensPerSecond),
                EvictionAgeSeconds = info.KvEvictionAgeSeconds, // wall seconds (the worker's clock), as the gaps
                PriorTurns = ctx.Request.PriorTurns,
                SessionTurn = sessionTurn,
                WorkerHostKvBlocks = info.HostKvBlocksTotal,
                ReloadSeconds = prompt * info.HostReloadSecondsPerToken,
                WorkerPinCostBlocks = info.PinBlocksTotal.Cost,
                WorkerPinSavedBlocks = info.PinBlocksTotal.Saved,
            };
            var actions = _actions; // only used under the lock
            actions.Clear();
            _policy.OnTurnCompleted(turn, actions);
            foreach (var a in actions)
            {
                Log.Decision(_logger, a.Kind.ToString(), a.TtlMs, a.Value, worker.Prefix, Enabled);
            }

            if (!Enabled)
            {
                return;
            }

            for (int i = 0; i < actions.Count; i++)
            {
                var a = actions[i];
                var target = _workers[a.Worker];

                // The worker knows the session only if the gateway sent it (x-session-id); else pin/release by hashes.
                string? workerSession = ctx.SessionId is not null && a.SessionId == id.SessionId ? ctx.SessionId : null;
                if (a.Kind == RetentionActionKind.Prefetch)
                {
                    // No pin in either tier: the worker's LRU demotes the context to host memory if HBM needs the room;
                    // the prefetch brings it back before the predicted return (a prefetch of a context still in HBM loads nothing).
                    _prefetch.Schedule(a.SessionId, target, workerSession, a.SessionId == id.SessionId ? hashes : [], TimeSpan.FromMilliseconds(a.PrefetchAfterMs));
                    continue;
                }

                if (a.Kind == RetentionActionKind.Release)
                {
                    _prefetch.Cancel(a.SessionId);
                }

                bool partial = a.Kind == RetentionActionKind.Retain && a.Blocks > 0 && a.Blocks < hashes.Length;
                ulong[]? last;
                if (a.Kind == RetentionActionKind.Retain)
                {
                    last = partial ? hashes[..a.Blocks] : hashes;
                    _lastHashes.Set(a.SessionId, new PinnedContext(workerSession, last)); // a budget eviction from another session's turn releases it by hash
                    if (last.Length > 0)
                    {
                        _pinByLastHash.Set((target.Info.Index, last[^1]), a.SessionId);
                    }
                }
                else
                {
                    last = _lastHashes.Remove(a.SessionId, out var known) ? known.Hashes : null;
                    if (last is { Length: > 0 })
                    {
                        _pinByLastHash.Remove((target.Info.Index, last[^1]), out _);
                    }
                }

                _ = SendAsync(target, a, workerSession, last, partial);
            }
        }
    }

    /// <summary>
    /// A worker's <c>pin_dropped</c> KV event (<paramref name="workerIndex"/> = <see cref="WorkerInfo.Index"/>): finds the pin
    /// among the event's blocks (a worker pins the prompt's blocks, possibly with the answer's after them) and tells the
    /// policy, which frees its budget share, does not renew it and scores it as ended unused. Cost: one lookup per block of
    /// the dropped pin, only on drops.
    /// </summary>
    public void OnPinDropped(int workerIndex, KvEvent e)
    {
        if (!Enabled)
        {
            return;
        }

        lock (_lock)
        {
            foreach (ulong h in e.BlockHashes ?? [])
            {
                if (!_pinByLastHash.Remove((workerIndex, h), out var session))
                {
                    continue;
                }

                int index = _workers.FindIndex(w => w.Info.Index == workerIndex);
                if (index >= 0)
                {
                    _policy.OnPinDropped(session, index);
                    Log.PinDropped(_logger, _workers[index].Prefix);
                }

                return;
            }
        }
    }

    private async Task SendAsync(WorkerEndpoint worker, RetentionAction a, string? session, ulong[]? hashes, bool partial)
    {
        try
        {
            var uri = new Uri(worker.BaseUri, a.Kind == RetentionActionKind.Retain ? "worker/kv/retain" : "worker/kv/release");
            var hashesToSend = session is null || partial ? hashes : null;
            if (session is null && hashesToSend is null)
            {
                return;
            }

            using var response = a.Kind == RetentionActionKind.Retain
                ? await _http.PostAsJsonAsync(uri, new RetainBody { SessionId = session, BlockHashes = hashesToSend, TtlMs = a.TtlMs, Priority = a.Priority, Value = a.Value, Tier = a.Tier == RetentionTier.Host ? KvPinTier.Host : null }, WorkerContractJson.Default.RetainBody).ConfigureAwait(false)
                : await _http.PostAsJsonAsync(uri, new ReleaseBody { SessionId = session, BlockHashes = hashesToSend }, WorkerContractJson.Default.ReleaseBody).ConfigureAwait(false);
            Interlocked.Increment(ref _hintsSent);
            if (!response.IsSuccessStatusCode)
            {
                Interlocked.Increment(ref _hintsFailed);
                Log.HintFailed(_logger, worker.Prefix, (int)response.StatusCode);
            }
            else if (a.Kind == RetentionActionKind.Retain)
            {
                _metrics?.RecordRetentionPinsCreated(1);
            }
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or OperationCanceledException)
        {
            Interlocked.Increment(ref _hintsFailed);
            Log.HintFailed(_logger, worker.Prefix, 0);
        }
    }

    private static string? FirstHeader(IHeaderDictionary headers, params string[] names)
    {
        foreach (var n in names)
        {
            if (headers.TryGetValue(n, out var v) && !string.IsNullOrWhiteSpace(v.ToString()))
            {
                return v.ToString().Trim();
            }
        }

        return null;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _renewTimer?.Dispose();
        _prefetch.Dispose();
        _http.Dispose();
    }

    private sealed record PinnedContext(string? WorkerSession, ulong[] Hashes);

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.AgentDecision, Level = LogLevel.Debug, Message = "agent retention: {Kind} ttl_ms={TtlMs} value={Value:F2} worker={Worker} sent={Sent}")]
        public static partial void Decision(ILogger logger, string kind, long ttlMs, double value, string worker, bool sent);

        [LoggerMessage(EventId = EventIds.AgentHintFailed, Level = LogLevel.Warning, Message = "agent retention hint to {Worker} failed (status {Status})")]
        public static partial void HintFailed(ILogger logger, string worker, int status);

        [LoggerMessage(EventId = EventIds.AgentPinDropped, Level = LogLevel.Debug, Message = "agent retention: worker {Worker} dropped a pin under memory pressure")]
        public static partial void PinDropped(ILogger logger, string worker);
    }
}
