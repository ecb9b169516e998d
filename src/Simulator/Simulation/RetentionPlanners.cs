using Worker.Contract;
using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>What a retention planner sees when a turn ends (never the future: no next think time).</summary>
public sealed class TurnCompletedContext
{
    /// <summary>Virtual time, seconds.</summary>
    public double Now { get; init; }

    /// <summary>Session id.</summary>
    public required string SessionId { get; init; }

    /// <summary>Tenant path.</summary>
    public required string Tenant { get; init; }

    /// <summary>"tool_use", "end_turn" or null.</summary>
    public string? Stop { get; init; }

    /// <summary>Tool name, when the trace has it.</summary>
    public string? Tool { get; init; }

    /// <summary>True when the session has no further turn (the planner should release).</summary>
    public bool LastTurn { get; init; }

    /// <summary>Worker index that served the turn.</summary>
    public int Worker { get; init; }

    /// <summary>The engine of that worker (Retain/Release act on it).</summary>
    public required LlmEngine Engine { get; init; }

    /// <summary>Prompt block hashes of the finished turn.</summary>
    public required ulong[] BlockHashes { get; init; }

    /// <summary>Agent kind ("main" for a root session, "subagent" for a child).</summary>
    public string AgentKind { get; init; } = "main";

    /// <summary>
    /// The session's next think time from the trace (NaN after its last turn). The future: read only by the
    /// <see cref="OracleRetentionPolicy"/> upper bound, never by a real policy.
    /// </summary>
    public double NextThinkSeconds { get; init; } = double.NaN;
}

/// <summary>What a retention planner sees when a session's next turn arrives (to score its prediction).</summary>
public sealed class TurnArrivedContext
{
    /// <summary>Virtual time, seconds.</summary>
    public double Now { get; init; }

    /// <summary>Session id.</summary>
    public required string SessionId { get; init; }

    /// <summary>Seconds since the session's previous turn completed.</summary>
    public double GapSeconds { get; init; }
}

/// <summary>
/// Hook for agent-aware KV retention (issue 7): the run loop calls it when a turn completes (pin or release the
/// session's blocks on its worker) and when a session's next turn arrives (learn the gap). Planners report the
/// pinned block-seconds that no later turn used.
/// </summary>
public interface IRetentionPlanner
{
    /// <summary>Name used by --retention.</summary>
    string Name { get; }

    /// <summary>A turn finished.</summary>
    void OnTurnCompleted(TurnCompletedContext context);

    /// <summary>
    /// A session's next turn arrived: returns what became of the pin taken when its previous turn ended, and the gap the
    /// policy closed (its kind decides whether the turn is a resumed one, <see cref="Gateway.Core.Agents.ResumedTurnPriority"/>).
    /// </summary>
    TurnArrival OnTurnArrived(TurnArrivedContext context);

    /// <summary>Block-seconds pinned by this planner that no later request reused.</summary>
    double PinnedUnusedBlockSeconds { get; }

    /// <summary>
    /// Seconds from now until the run loop should call <see cref="OnPinsExpiring"/>: <see cref="AgentRetentionPlanner.RenewLeadSeconds"/>
    /// before the earliest pin the policy may renew runs out (≤ 0: at once); null when there is none.
    /// </summary>
    double? SecondsToRenewalCheck { get; }

    /// <summary>Lets the policy renew the pins running out within <see cref="AgentRetentionPlanner.RenewLeadSeconds"/> (before the engine expires them).</summary>
    void OnPinsExpiring();
}

/// <summary>What a planner found when a session's next turn arrived.</summary>
/// <param name="Fate">What became of the pin taken when the previous turn ended.</param>
/// <param name="Gap">The gap the retention policy closed.</param>
public readonly record struct TurnArrival(PinFate Fate, Gateway.Core.Agents.ClosedGap Gap);

/// <summary>What became of a session's pin by the time its next turn arrived.</summary>
public enum PinFate
{
    /// <summary>No pin was taken (policy off, or it decided not to).</summary>
    None,

    /// <summary>Still held: the return found it.</summary>
    Held,

    /// <summary>Its TTL passed before the return.</summary>
    Expired,

    /// <summary>The engine dropped it under memory pressure or for the pinned-share cap.</summary>
    Dropped,
}

/// <summary>
/// Drives a <see cref="Gateway.Core.Agents.IRetentionPolicy"/> (off, fixed:SECONDS, predictive) against the simulated
/// engines, as the gateway does over /worker/kv/retain and /worker/kv/release. Pin accounting: each retain is a pin
/// record (blocks the engine actually pinned, from <see cref="RetainResult.PinnedBlocks"/>). When the session's next
/// turn arrives, releasing the pin tells whether it was still held (expired or dropped pins release nothing): a held
/// pin was used; otherwise its blocks × (min(arrival, expiry) − start) count as unused. Pins the engine drops under
/// pressure are seen in its KV event log (<c>pin_dropped</c>, read at every planner call) and count as unused up to that
/// call. A used pin is re-taken at once so the context stays protected until the returning turn is admitted; the next
/// completion replaces it. Pins released without a return (human gap, session end, budget eviction) count as unused
/// for the time they were held. A renewal (the policy extends a pin shortly before its TTL, <see cref="OnPinsExpiring"/>)
/// re-pins the same blocks by session with the new TTL: the record keeps its start, so it stays one continuous pin.
/// </summary>
public sealed class AgentRetentionPlanner : IRetentionPlanner
{
    /// <summary>How long before a pin's expiry the policy is asked whether to renew it (virtual seconds).</summary>
    public const double RenewLeadSeconds = 0.25;

    private const long InFlightTtlMs = 120_000;

    private readonly Gateway.Core.Agents.IRetentionPolicy _policy;
    private readonly TimeProvider _time;
    private readonly Dictionary<int, LlmEngine> _engines = [];
    private readonly Dictionary<string, PinRecord> _pins = new(StringComparer.Ordinal);
    private readonly List<Gateway.Core.Agents.RetentionAction> _actions = [];
    private readonly Dictionary<(int Worker, ulong LastHash), string> _byLastHash = [];
    private readonly Dictionary<int, long> _cursor = [];
    private readonly List<KvEvent> _events = [];
    private double _unused;
    private readonly HashSet<string> _dropped = new(StringComparer.Ordinal); // sessions whose pin the engine dropped

    /// <summary>Wraps <paramref name="policy"/>.</summary>
    public AgentRetentionPlanner(Gateway.Core.Agents.IRetentionPolicy policy, TimeProvider time)
    {
        _policy = policy;
        _time = time;
    }

    /// <inheritdoc />
    public string Name => _policy.Name;

    /// <summary>The policy's shadow-mode score.</summary>
    public Gateway.Core.Agents.RetentionStats Stats => _policy.Stats;

    /// <inheritdoc />
    public double PinnedUnusedBlockSeconds => _unused;

    /// <inheritdoc />
    public void OnTurnCompleted(TurnCompletedContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var engine = context.Engine;
        if (_engines.TryAdd(context.Worker, engine))
        {
            _cursor[context.Worker] = engine.KvEvents.LastSeq;
        }

        double now = Now();
        SyncDrops(now);

        // The session moved to another worker: its old pin there is of no use any more.
        if (_pins.TryGetValue(context.SessionId, out var prev) && prev.Worker != context.Worker)
        {
            ReleasePin(context.SessionId, now);
        }

        bool tool = context.Stop == "tool_use";
        var outcome = Gateway.Core.Agents.TurnClassifier.Classify(tool ? "tool_calls" : context.Stop, context.Tool is null ? null : [context.Tool]);
        int blockSize = engine.Options.BlockSize;
        var turn = new Gateway.Core.Agents.TurnCompletion
        {
            SessionId = context.SessionId,
            Tenant = context.Tenant,
            AgentKind = context.AgentKind,
            Outcome = outcome,
            Worker = context.Worker,
            Blocks = context.BlockHashes.Length,
            WorkerKvBlocks = engine.KvBlocksTotal,
            PrefillSeconds = PrefillSeconds(engine, context.BlockHashes.Length * blockSize),
            SessionEnded = context.LastTurn,
            EvictionAgeSeconds = engine.KvEvictionAgeSeconds, // simulated seconds, as the gaps
            WorkerHostKvBlocks = engine.HostKvBlocksTotal,
            WorkerPinCostBlocks = engine.PinOutcomeBlocks.CostBlocks,
            WorkerPinSavedBlocks = engine.PinOutcomeBlocks.SavedBlocks,
            ReloadSeconds = engine.Options.Profile.HostLoadSeconds((long)context.BlockHashes.Length * blockSize),
        };
        _actions.Clear();
        _dropped.Remove(context.SessionId);
        _hostPinned.Remove(context.SessionId);
        if (_policy is OracleRetentionPolicy oracle)
        {
            oracle.NextGapSeconds = context.NextThinkSeconds;
        }

        _policy.OnTurnCompleted(turn, _actions);
        foreach (var a in _actions)
        {
            if (a.Kind == Gateway.Core.Agents.RetentionActionKind.Release)
            {
                ReleasePin(a.SessionId, now);
                continue;
            }

            if (a.Kind == Gateway.Core.Agents.RetentionActionKind.Prefetch)
            {
                ReleasePin(a.SessionId, now); // no pin in either tier while it waits
                HostRetains++;
                _hostPinned[a.SessionId] = a.Worker;
                PendingPrefetches.Add((a.PrefetchAfterMs / 1000.0, a.Worker, a.SessionId));
                continue;
            }

            // Retaining by session replaces the session's in-flight pin (used: nothing to count).
            if (_pins.Remove(a.SessionId, out var replaced))
            {
                Forget(replaced);
            }

            var hashes = a.Blocks > 0 && a.Blocks < context.BlockHashes.Length ? context.BlockHashes[..a.Blocks] : context.BlockHashes;
            if (a.Tier == Gateway.Core.Agents.RetentionTier.Host)
            {
                // Demoted to the host tier: it holds no HBM, so it is not an HBM pin record; a prefetch may follow.
                var host = engine.Retain(new RetainRequest { SessionId = a.SessionId, BlockHashes = hashes, TtlMs = a.TtlMs, Value = a.Value, Tier = KvPinTier.Host });
                if (host.PinnedBlocks > 0)
                {
                    HostRetains++;
                    _hostPinned[a.SessionId] = a.Worker;
                    if (a.PrefetchAfterMs > 0)
                    {
                        PendingPrefetches.Add((a.PrefetchAfterMs / 1000.0, a.Worker, a.SessionId)); // a delay: the run loop adds it to now
                    }
                }

                continue;
            }

            var result = engine.Retain(new RetainRequest { SessionId = a.SessionId, BlockHashes = hashes, TtlMs = a.TtlMs, Priority = a.Priority, Value = a.Value });
            if (result.PinnedBlocks > 0)
            {
                Track(a.SessionId, new PinRecord(a.Worker, result.PinnedBlocks, now, now + a.TtlMs / 1000.0, a.Value, a.Priority, false, context.BlockHashes));
            }
        }
    }

    /// <inheritdoc />
    public TurnArrival OnTurnArrived(TurnArrivedContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        double now = Now();
        SyncDrops(now); // first, so the policy hears of a drop before it scores the gap
        var gap = _policy.OnTurnArrived(context.SessionId);
        if (_hostPinned.Remove(context.SessionId, out int hostWorker) && _engines.TryGetValue(hostWorker, out var hostEngine))
        {
            hostEngine.Release(new ReleaseRequest { SessionId = context.SessionId }); // the return uses it now: the host pin has done its job
        }

        if (!_pins.Remove(context.SessionId, out var pin) || !_engines.TryGetValue(pin.Worker, out var engine))
        {
            return new(_dropped.Remove(context.SessionId) ? PinFate.Dropped : PinFate.None, gap);
        }

        Forget(pin);
        int held = engine.Release(new ReleaseRequest { SessionId = context.SessionId });
        if (held == 0)
        {
            _unused += pin.Blocks * Math.Max(0, Math.Min(now, pin.ExpiresAt) - pin.Start);
            return new(now >= pin.ExpiresAt ? PinFate.Expired : PinFate.Dropped, gap);
        }

        // Used. Keep the context protected until the returning turn is admitted.
        var result = engine.Retain(new RetainRequest { SessionId = context.SessionId, TtlMs = InFlightTtlMs, Priority = pin.Priority, Value = pin.Value });
        if (result.PinnedBlocks > 0)
        {
            Track(context.SessionId, pin with { Blocks = result.PinnedBlocks, Start = now, ExpiresAt = now + InFlightTtlMs / 1000.0, InFlight = true });
        }

        return new(PinFate.Held, gap);
    }

    private void ReleasePin(string session, double now)
    {
        if (!_pins.Remove(session, out var pin) || !_engines.TryGetValue(pin.Worker, out var engine))
        {
            return;
        }

        Forget(pin);
        int held = engine.Release(new ReleaseRequest { SessionId = session });
        if (!pin.InFlight)
        {
            double end = held > 0 ? now : Math.Min(now, pin.ExpiresAt);
            _unused += pin.Blocks * Math.Max(0, end - pin.Start);
        }
    }

    private void Track(string session, PinRecord pin)
    {
        _pins[session] = pin;
        _byLastHash[(pin.Worker, pin.Hashes[pin.Blocks - 1])] = session;
    }

    private void Forget(PinRecord pin) => _byLastHash.Remove((pin.Worker, pin.Hashes[pin.Blocks - 1]));

    // Pins the engine dropped under pressure since the last call: unused from their start until now.
    private void SyncDrops(double now)
    {
        foreach (var (worker, engine) in _engines)
        {
            _events.Clear();
            engine.KvEvents.ReadAfter(_cursor[worker], _events, out _);
            if (_events.Count == 0)
            {
                continue;
            }

            _cursor[worker] = _events[^1].Seq;
            foreach (var e in _events)
            {
                if (e.Type != KvEventType.PinDropped || e.BlockHashes is not { Length: > 0 } dropped ||
                    !_byLastHash.Remove((worker, dropped[^1]), out var session) || !_pins.Remove(session, out var pin))
                {
                    continue;
                }

                if (!pin.InFlight)
                {
                    _unused += pin.Blocks * Math.Max(0, Math.Min(now, pin.ExpiresAt) - pin.Start);
                }

                _dropped.Add(session);
                _policy.OnPinDropped(session, worker); // frees its budget share; not renewed
            }
        }
    }

    /// <inheritdoc />
    public double? SecondsToRenewalCheck => _policy.NextPinExpiry is { } at ? (at - _time.GetUtcNow()).TotalSeconds - RenewLeadSeconds : null;

    /// <summary>Pins the policy renewed (re-pinned on the engine).</summary>
    public long Renewed { get; private set; }

    /// <inheritdoc />
    public void OnPinsExpiring()
    {
        double now = Now();
        SyncDrops(now);
        _actions.Clear();
        _policy.OnPinsExpiring(_time.GetUtcNow() + TimeSpan.FromSeconds(RenewLeadSeconds), _actions);
        foreach (var a in _actions)
        {
            if (a.Kind == Gateway.Core.Agents.RetentionActionKind.Release)
            {
                ReleasePin(a.SessionId, now);
                continue;
            }

            // A renewal: only a pin the engine still holds (one it dropped under pressure stays dropped).
            if (!_pins.TryGetValue(a.SessionId, out var pin) || pin.InFlight || pin.Worker != a.Worker || !_engines.TryGetValue(pin.Worker, out var engine))
            {
                continue;
            }

            Forget(pin);
            var hashes = a.Blocks > 0 && a.Blocks < pin.Hashes.Length ? pin.Hashes[..a.Blocks] : pin.Hashes;
            var result = engine.Retain(new RetainRequest { SessionId = a.SessionId, BlockHashes = hashes, TtlMs = a.TtlMs, Priority = a.Priority, Value = a.Value });
            if (result.PinnedBlocks > 0)
            {
                Renewed++;
                Track(a.SessionId, pin with { Blocks = result.PinnedBlocks, ExpiresAt = now + a.TtlMs / 1000.0, Value = a.Value });
                continue;
            }

            // Re-pinning replaced the old pin but held nothing: it ends here, unused.
            _pins.Remove(a.SessionId);
            _unused += pin.Blocks * Math.Max(0, now - pin.Start);
            _dropped.Add(a.SessionId);
        }
    }

    private double Now() => (_time.GetUtcNow() - DateTimeOffset.UnixEpoch).TotalSeconds;

    private readonly Dictionary<string, int> _hostPinned = new(StringComparer.Ordinal); // session -> worker holding its host pin

    /// <summary>Contexts demoted to a host tier (retain hints naming it).</summary>
    public long HostRetains { get; private set; }

    /// <summary>Prefetches asked for (seconds from now, worker, session), for the run loop to schedule; it clears the list.</summary>
    public List<(double Delay, int Worker, string Session)> PendingPrefetches { get; } = [];

    /// <summary>Prefetches that found their session still waiting in the host tier and copied blocks back.</summary>
    public long PrefetchesDone { get; private set; }

    /// <summary>Blocks copied back into HBM by prefetches.</summary>
    public long PrefetchedBlocks { get; private set; }

    /// <summary>
    /// A prefetch is due: if the session is still waiting in <paramref name="worker"/>'s host tier (its turn has not arrived
    /// and no newer decision replaced it), its context is copied back into HBM within the engine's budget.
    /// </summary>
    public void Prefetch(int worker, string session)
    {
        if (!_hostPinned.TryGetValue(session, out int w) || w != worker || !_engines.TryGetValue(worker, out var engine))
        {
            return;
        }

        var result = engine.Prefetch(new PrefetchRequest { SessionId = session });
        if (result.LoadedBlocks > 0)
        {
            PrefetchesDone++;
            PrefetchedBlocks += result.LoadedBlocks;
        }
    }

    /// <summary>Prefill seconds of <paramref name="tokens"/> from scratch, chunked like the engine (MaxBatchTokens per step).</summary>
    internal static double PrefillSeconds(LlmEngine engine, int tokens)
    {
        var profile = engine.Options.Profile;
        int chunk = Math.Max(1, engine.Options.MaxBatchTokens);
        double seconds = 0;
        for (int done = 0; done < tokens; done += chunk)
        {
            seconds += profile.PrefillSeconds(Math.Min(chunk, tokens - done), done);
        }

        return seconds;
    }

    private sealed record PinRecord(int Worker, int Blocks, double Start, double ExpiresAt, double Value, int Priority, bool InFlight, ulong[] Hashes);
}

/// <summary>
/// Retention planners by name: off, fixed:SECONDS, predictive (Gateway.Core.Agents.RetentionPolicies), and the
/// simulator-only upper bound <c>oracle</c> (<see cref="OracleRetentionPolicy"/>).
/// </summary>
public static class RetentionPlanners
{
    /// <summary>Example names accepted by --retention (fixed takes any positive number of seconds).</summary>
    public static IReadOnlyList<string> Names { get; } = [.. Gateway.Core.Agents.RetentionPolicies.Names, "oracle:15"];

    /// <summary>True if --retention accepts <paramref name="name"/>.</summary>
    public static bool IsValid(string name) =>
        Gateway.Core.Agents.RetentionPolicies.IsValid(name) || OracleRetentionPolicy.TryCreate(name, TimeProvider.System) is not null;

    /// <summary>
    /// Creates a fresh planner (<paramref name="options"/>: the policies' knobs, defaults when null). <c>off</c> too drives
    /// its Core policy, which sends nothing but tracks the sessions' gaps (what program priority needs).
    /// </summary>
    public static AgentRetentionPlanner Create(string name, TimeProvider time, Gateway.Core.Agents.RetentionOptions? options = null) =>
        new(OracleRetentionPolicy.TryCreate(name, time) as Gateway.Core.Agents.IRetentionPolicy ?? Gateway.Core.Agents.RetentionPolicies.Create(name, time, options), time);
}
