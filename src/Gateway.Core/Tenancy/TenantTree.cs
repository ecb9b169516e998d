using System.Security.Cryptography;
using System.Text;

namespace Gateway.Core.Tenancy;

/// <summary>A node of a built <see cref="TenantTree"/>: configuration plus effective (inherited) settings.</summary>
public sealed class TenantNode
{
    internal TenantNode(TenantNodeConfig config, string path, TenantNode? parent)
    {
        Config = config;
        Path = path;
        Parent = parent;
        Priority = config.Priority ?? parent?.Priority ?? PriorityClass.Interactive;
        Sheddable = config.Sheddable ?? parent?.Sheddable ?? false;
        QueueTimeout = config.Quota?.QueueTimeout ?? parent?.QueueTimeout;
        Depth = parent is null ? 1 : parent.Depth + 1;
    }

    /// <summary>The node's configuration.</summary>
    public TenantNodeConfig Config { get; }

    /// <summary>Path, e.g. "acme/search/key-1".</summary>
    public string Path { get; }

    /// <summary>Parent (null for a top-level node).</summary>
    public TenantNode? Parent { get; }

    /// <summary>1 for top-level nodes.</summary>
    public int Depth { get; }

    /// <summary>Share weight among siblings.</summary>
    public double Weight => Config.Weight;

    /// <summary>Effective priority class (inherited).</summary>
    public PriorityClass Priority { get; }

    /// <summary>Effective sheddability (inherited).</summary>
    public bool Sheddable { get; }

    /// <summary>Effective queue timeout (nearest ancestor-or-self that sets one).</summary>
    public TimeSpan? QueueTimeout { get; }

    /// <summary>Children.</summary>
    public IReadOnlyList<TenantNode> Children { get; internal set; } = [];

    /// <summary>True if every allow-list on the path from the top to this node admits <paramref name="model"/>.</summary>
    public bool IsModelAllowed(string model)
    {
        for (var n = this; n is not null; n = n.Parent)
        {
            var list = n.Config.AllowedModels;
            if (list is null)
            {
                continue;
            }

            var ok = false;
            for (var i = 0; i < list.Count; i++)
            {
                if (string.Equals(list[i], model, StringComparison.Ordinal) || list[i] == "*")
                {
                    ok = true;
                    break;
                }
            }

            if (!ok)
            {
                return false;
            }
        }

        return true;
    }
}

/// <summary>
/// Immutable tenant tree (org → team → API key) built from <see cref="TenantTreeConfig"/>. A reload builds a new
/// tree and swaps it in; schedulers and quota ledgers keep their state keyed by path, so in-flight accounting
/// survives. API keys are held only as SHA-256 digests.
/// </summary>
public sealed class TenantTree
{
    private readonly Dictionary<string, TenantNode> _byPath;
    private readonly Dictionary<string, TenantNode> _byKeyDigest;

    private TenantTree(IReadOnlyList<TenantNode> roots, Dictionary<string, TenantNode> byPath, Dictionary<string, TenantNode> byKey)
    {
        Roots = roots;
        _byPath = byPath;
        _byKeyDigest = byKey;
    }

    /// <summary>An empty tree (every path unknown, weight 1).</summary>
    public static TenantTree Empty { get; } = new([], new(StringComparer.Ordinal), new(StringComparer.Ordinal));

    /// <summary>Top-level nodes.</summary>
    public IReadOnlyList<TenantNode> Roots { get; }

    /// <summary>All nodes by path.</summary>
    public IReadOnlyDictionary<string, TenantNode> Nodes => _byPath;

    /// <summary>Builds a tree, collecting every configuration error before failing.</summary>
    public static TenantTree Build(TenantTreeConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var errors = new List<string>();
        var byPath = new Dictionary<string, TenantNode>(StringComparer.Ordinal);
        var byKey = new Dictionary<string, TenantNode>(StringComparer.Ordinal);
        var roots = BuildLevel(config.Tenants, null, byPath, byKey, errors);
        if (errors.Count > 0)
        {
            throw new TenantConfigException(errors);
        }

        return new TenantTree(roots, byPath, byKey);
    }

    /// <summary>Finds a node by path.</summary>
    public TenantNode? Find(string path) => _byPath.TryGetValue(path.Trim('/'), out var n) ? n : null;

    /// <summary>Weight of a path (1 for unknown paths and session leaves).</summary>
    public double WeightOf(string path) => _byPath.TryGetValue(path, out var n) ? n.Weight : 1.0;

    /// <summary>Maps a presented API key to its node (constant-time digest comparison by dictionary of digests).</summary>
    public bool TryResolveApiKey(string apiKey, out TenantNode? node)
    {
        node = null;
        return !string.IsNullOrEmpty(apiKey) && _byKeyDigest.TryGetValue(Digest(apiKey), out node);
    }

    private static string Digest(string key) => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private static List<TenantNode> BuildLevel(
        IReadOnlyList<TenantNodeConfig> configs, TenantNode? parent, Dictionary<string, TenantNode> byPath,
        Dictionary<string, TenantNode> byKey, List<string> errors)
    {
        var list = new List<TenantNode>(configs.Count);
        foreach (var c in configs)
        {
            var where = parent is null ? "top level" : $"'{parent.Path}'";
            if (c is null)
            {
                errors.Add($"null node under {where}");
                continue;
            }

            if (string.IsNullOrWhiteSpace(c.Name) || c.Name.Contains('/', StringComparison.Ordinal) || c.Name.Contains('\u0001', StringComparison.Ordinal))
            {
                errors.Add($"node name '{c.Name}' under {where} must be non-empty and contain no '/'");
                continue;
            }

            var path = parent is null ? c.Name : parent.Path + "/" + c.Name;
            if (!(c.Weight > 0) || double.IsInfinity(c.Weight))
            {
                errors.Add($"'{path}': weight must be a positive number (got {c.Weight})");
            }

            if (c.Quota is { } q)
            {
                if (q.TokensPerMinute is <= 0) { errors.Add($"'{path}': tokens_per_minute must be positive"); }
                if (q.RequestsPerMinute is <= 0) { errors.Add($"'{path}': requests_per_minute must be positive"); }
                if (q.MaxConcurrent is <= 0) { errors.Add($"'{path}': max_concurrent must be positive"); }
                if (q.Budget is < 0) { errors.Add($"'{path}': budget must not be negative"); }
                if (q.MaxQueued is < 0) { errors.Add($"'{path}': max_queued must not be negative"); }
                if (q.QueueTimeout is { } t && t <= TimeSpan.Zero) { errors.Add($"'{path}': queue_timeout must be positive"); }
            }

            if (byPath.ContainsKey(path))
            {
                errors.Add($"duplicate node '{path}'");
                continue;
            }

            var node = new TenantNode(c, path, parent);
            byPath.Add(path, node);
            if (c.ApiKeys is not null)
            {
                foreach (var key in c.ApiKeys)
                {
                    if (string.IsNullOrEmpty(key))
                    {
                        errors.Add($"'{path}': empty API key");
                    }
                    else if (!byKey.TryAdd(Digest(key), node))
                    {
                        errors.Add($"'{path}': an API key is already assigned to another node"); // never print the key
                    }
                }
            }

            node.Children = BuildLevel(c.Children ?? [], node, byPath, byKey, errors);
            list.Add(node);
        }

        return list;
    }
}

/// <summary>Every error found in a tenant configuration.</summary>
public sealed class TenantConfigException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TenantConfigException(IReadOnlyList<string> errors)
        : base("invalid tenant configuration: " + string.Join("; ", errors))
    {
        Errors = errors;
    }

    /// <summary>Creates the exception.</summary>
    public TenantConfigException()
        : this([])
    {
    }

    /// <summary>Creates the exception.</summary>
    public TenantConfigException(string message)
        : this([message])
    {
    }

    /// <summary>Creates the exception.</summary>
    public TenantConfigException(string message, Exception inner)
        : base(message, inner)
    {
        Errors = [message];
    }

    /// <summary>The errors.</summary>
    public IReadOnlyList<string> Errors { get; }
}
