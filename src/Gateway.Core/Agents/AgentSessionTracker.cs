using Gateway.Core.Collections;

namespace Gateway.Core.Agents;

/// <summary>Who a request belongs to: the session (program) id, its parent for sub-agents, and how it was found.</summary>
/// <param name="SessionId">Session id (explicit, or "chain-…" when recognised from the prefix chain).</param>
/// <param name="ParentSessionId">Parent session of a sub-agent, else null.</param>
/// <param name="AgentKind">Agent kind label ("claude-code", "codex", a sub-agent type such as "Explore", or "unknown").</param>
/// <param name="Source">"header" (an explicit id was sent), "chain" (extends an earlier request's chain) or "new" (first request of a chain).</param>
public readonly record struct AgentIdentity(string SessionId, string? ParentSessionId, string AgentKind, string Source);

/// <summary>
/// Session / program identity for agent traffic (issue 7). An explicit id (x-claude-code-session-id, Codex/OpenCode
/// ids, x-session-id, prompt_cache_key, user: whatever the gateway already resolved) wins. Without one, a request whose
/// block-hash chain contains the last block hash of an earlier request of the same tenant continues that request's
/// session (agents re-send the whole context, so turn k+1 extends turn k's chain). Sub-agents are children of their
/// parent session (parent id sent as a header, or known from the sub-agent's own id). Memory is bounded: the
/// last-block-hash map forgets its oldest entries first. Not thread-safe: the caller serialises.
/// </summary>
public sealed class AgentSessionTracker
{
    private readonly BoundedMap<(string Tenant, ulong Hash), string> _byLastHash;
    private readonly BoundedMap<string, string> _parents;
    private long _next;

    /// <summary>Creates a tracker that remembers at most <paramref name="capacity"/> chains (and as many parent links).</summary>
    public AgentSessionTracker(int capacity = 65536)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _byLastHash = new(capacity);
        _parents = new(capacity, StringComparer.Ordinal);
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

        if (blockHashes.Length > 0)
        {
            Remember(tenant, blockHashes[^1], id);
        }

        string? parent = parentSessionId;
        if (!string.IsNullOrEmpty(parent) && parent != id)
        {
            _parents.Set(id, parent);
        }
        else if (!_parents.TryGetValue(id, out parent))
        {
            parent = null;
        }

        return new AgentIdentity(id, parent, kind, source);
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

    private void Remember(string tenant, ulong last, string id) => _byLastHash.Set((tenant, last), id);
}
