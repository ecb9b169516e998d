using Gateway.Core.Collections;

namespace Gateway.Core.Agents;

/// <summary>Who a request belongs to: the session (program) id, its parent for sub-agents, and how it was found.</summary>
/// <param name="SessionId">Session id (explicit, or "chain-…" when recognised from the prefix chain).</param>
/// <param name="ParentSessionId">Parent session of a sub-agent, else null.</param>
/// <param name="AgentKind">Agent kind label ("claude-code", "codex", a sub-agent type such as "Explore", or "unknown").</param>
/// <param name="Source">"header" (an explicit id was sent), "chain" (extends an earlier request's chain) or "new" (first request of a chain).</param>
public readonly record struct AgentIdentity(string SessionId, string? ParentSessionId, string AgentKind, string Source)
{
    /// <summary>
    /// A side call of the session: it does not extend the session's main line (the prompt of its latest turn) and is less
    /// than half its size — a client asking for a title or a command check while a tool runs. It must not close the
    /// session's gap; if it ends with tool calls after all, the host adopts it as the main line
    /// (<see cref="AgentSessionTracker.Adopt"/>).
    /// </summary>
    public bool Detached { get; init; }

    /// <summary>
    /// The session's turns so far, this one included (a side call does not count; 0: unknown). A session on its first turn
    /// is kept only for the tracker's single-turn idle time, so a one-shot request costs little for long.
    /// </summary>
    public int Turn { get; init; }
}

/// <summary>
/// Session / program identity for agent traffic (issue 7). An explicit id (x-claude-code-session-id, Codex/OpenCode
/// ids, x-session-id, prompt_cache_key, user: whatever the gateway already resolved) wins. Without one, a request whose
/// block-hash chain contains the last block hash of an earlier request of the same tenant continues that request's
/// session (agents re-send the whole context, so turn k+1 extends turn k's chain). Sub-agents are children of their
/// parent session (parent id sent as a header, or known from the sub-agent's own id). Each session's main line is its
/// latest turn's prompt (last block hash and length): a request that extends it continues the session, one that does not
/// and is under half its length is a side call (<see cref="AgentIdentity.Detached"/>; checked in O(1): the previous
/// prompt's last block must sit at the same index of the new chain). Memory is bounded: every map forgets its oldest
/// entries first, and with a single-turn idle time a session that has had one turn only is forgotten after that shorter
/// time (a one-shot request never comes back; a second turn gives the session the full idle time). Not thread-safe: the
/// caller serialises.
/// </summary>
public sealed class AgentSessionTracker
{
    private readonly BoundedMap<(string Tenant, ulong Hash), string> _byLastHash;
    private readonly BoundedMap<string, string> _parents;
    private readonly BoundedMap<string, (ulong Last, int Blocks, int Turns)> _mainLine;
    private long _next;

    /// <summary>
    /// Creates a tracker that remembers at most <paramref name="capacity"/> chains (and as many parent links), each for at
    /// most <paramref name="maxIdle"/> after its session's last turn (with <paramref name="time"/>; null: no age bound): a
    /// session idle longer starts a new one when it comes back. A session that has had a single turn is kept at most
    /// <paramref name="singleTurnIdle"/> (null: as long as any other; at most <paramref name="maxIdle"/>).
    /// </summary>
    public AgentSessionTracker(int capacity = 65536, TimeProvider? time = null, TimeSpan? maxIdle = null, TimeSpan? singleTurnIdle = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _byLastHash = new(capacity, time: time, maxIdle: maxIdle, briefIdle: singleTurnIdle);
        _parents = new(capacity, StringComparer.Ordinal, time: time, maxIdle: maxIdle, briefIdle: singleTurnIdle);
        _mainLine = new(capacity, StringComparer.Ordinal, time: time, maxIdle: maxIdle, briefIdle: singleTurnIdle);
    }

    /// <summary>Chains remembered now.</summary>
    public int Count => _byLastHash.Count;

    /// <summary>
    /// Resolves the session of a request. <paramref name="blockHashes"/> are its prompt's chained block hashes
    /// (salted per tenant, so chains of different tenants never meet; the tenant is part of the key anyway).
    /// </summary>
    public AgentIdentity Resolve(string tenant, string? explicitSessionId, string? parentSessionId, string? agentKind, ReadOnlySpan<ulong> blockHashes)
    {
        ArgumentNullException.ThrowIfNull(tenant);
        string kind = string.IsNullOrEmpty(agentKind) ? "unknown" : agentKind;
        string id;
        string source;
        if (!string.IsNullOrEmpty(explicitSessionId))
        {
            id = explicitSessionId;
            source = "header";
        }
        else if (FindChain(tenant, blockHashes) is { } found)
        {
            id = found;
            source = "chain";
        }
        else
        {
            id = "chain-" + (++_next).ToString(System.Globalization.CultureInfo.InvariantCulture);
            source = "new";
        }

        bool detached = false;
        int turns = 0;
        if (blockHashes.Length > 0)
        {
            if (_mainLine.TryGetValue(id, out var main))
            {
                turns = main.Turns;
                bool extends = blockHashes.Length >= main.Blocks && blockHashes[main.Blocks - 1] == main.Last;
                detached = !extends && 2L * blockHashes.Length < main.Blocks;
            }

            if (!detached)
            {
                turns = turns == int.MaxValue ? turns : turns + 1;
                _mainLine.Set(id, (blockHashes[^1], blockHashes.Length, turns), brief: turns <= 1);
            }

            Remember(tenant, blockHashes[^1], id, brief: turns <= 1);
        }

        string? parent = parentSessionId;
        if (!string.IsNullOrEmpty(parent) && parent != id)
        {
            _parents.Set(id, parent, brief: turns <= 1);
        }
        else if (!_parents.TryGetValue(id, out parent))
        {
            parent = null;
        }
        else if (turns == 2)
        {
            _parents.Set(id, parent); // the second turn: kept as long as the session
        }

        return new AgentIdentity(id, parent, kind, source) { Detached = detached, Turn = turns };
    }

    /// <summary>
    /// A detached request turned out to carry the session on (it ended with tool calls): its prompt becomes the main line,
    /// as the session's next turn. Returns the session's turns, this one included (0: no block hashes, nothing changed).
    /// </summary>
    public int Adopt(string sessionId, ReadOnlySpan<ulong> blockHashes)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (blockHashes.Length == 0)
        {
            return 0;
        }

        int turns = _mainLine.TryGetValue(sessionId, out var main) ? main.Turns : 0;
        turns = turns == int.MaxValue ? turns : turns + 1;
        _mainLine.Set(sessionId, (blockHashes[^1], blockHashes.Length, turns), brief: turns <= 1);
        return turns;
    }

    /// <summary>The parent session of <paramref name="sessionId"/>, if it is a known sub-agent.</summary>
    public string? ParentOf(string sessionId) => _parents.TryGetValue(sessionId, out var p) ? p : null;

    // Longest earlier chain first: scan from the tail so a request extending several earlier requests joins the latest.
    private string? FindChain(string tenant, ReadOnlySpan<ulong> hashes)
    {
        for (int i = hashes.Length - 1; i >= 0; i--)
        {
            if (_byLastHash.TryGetValue((tenant, hashes[i]), out var id))
            {
                return id;
            }
        }

        return null;
    }

    private void Remember(string tenant, ulong last, string id, bool brief) => _byLastHash.Set((tenant, last), id, brief);
}
