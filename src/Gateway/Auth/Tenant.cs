namespace Gateway.Auth;

/// <summary>
/// What an authenticated key maps to: a node of the tenant tree (org/team/key) with its weight, model allow-list,
/// caps, and the per-org cache salt (HMAC of the org path under the server secret) that keeps tenants' KV apart.
/// Immutable; one instance per configured key.
/// </summary>
public sealed class Tenant
{
    /// <summary>Creates a tenant record.</summary>
    public Tenant(string path, double weight, IReadOnlyCollection<string> models, int maxTokens, int maxN, string cacheSalt, IReadOnlyDictionary<string, string>? aliases = null)
    {
        Path = path;
        var parts = path.Split('/');
        Org = parts[0];
        Team = parts.Length > 1 ? parts[0] + "/" + parts[1] : parts[0];
        Weight = weight;
        AllowedModels = models.Count == 0 ? null : new HashSet<string>(models, StringComparer.Ordinal);
        ModelScope = new Core.Models.ModelScope
        {
            Allowed = AllowedModels,
            Aliases = aliases is null ? new Dictionary<string, string>(StringComparer.Ordinal) : new Dictionary<string, string>(aliases, StringComparer.Ordinal),
        };
        MaxTokens = maxTokens;
        MaxN = maxN;
        CacheSalt = cacheSalt;
        CacheSalt64 = Llm.Prompt.Hashing.BlockHasher.SaltOf(cacheSalt);
    }

    /// <summary>Full path <c>org/team/key</c>.</summary>
    public string Path { get; }

    /// <summary>Org segment.</summary>
    public string Org { get; }

    /// <summary>Team path <c>org/team</c>.</summary>
    public string Team { get; }

    /// <summary>Fair-share weight.</summary>
    public double Weight { get; }

    /// <summary>Allowed models; null = all.</summary>
    public IReadOnlySet<string>? AllowedModels { get; }

    /// <summary>This key's aliases and allow-list, as the model resolver takes them.</summary>
    public Core.Models.ModelScope ModelScope { get; }

    /// <summary>max_tokens cap (0 = none).</summary>
    public int MaxTokens { get; }

    /// <summary>n cap (0 = none).</summary>
    public int MaxN { get; }

    /// <summary>Salt string sent to workers as <c>x-cache-salt</c> (hex HMAC, reveals nothing about the secret).</summary>
    public string CacheSalt { get; }

    /// <summary><see cref="Llm.Prompt.Hashing.BlockHasher.SaltOf"/> of <see cref="CacheSalt"/>, used for routing block hashes.</summary>
    public ulong CacheSalt64 { get; }

    /// <summary>Whether this tenant may use <paramref name="model"/>.</summary>
    public bool MayUse(string model) => AllowedModels is null || AllowedModels.Contains(model);
}
