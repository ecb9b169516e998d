namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Knobs of <see cref="SglangCacheAwarePolicy"/>, with the two presets users launch.
/// <para><see cref="Current"/> (<c>sglang-cache-aware</c>): the SGLang model gateway CLI, sgl-project/sglang
/// <c>sgl-model-gateway/src/main.rs</c> <c>CliArgs</c>: <c>--cache-threshold 0.3</c>, <c>--balance-abs-threshold 64</c>,
/// <c>--balance-rel-threshold 1.5</c>, <c>--eviction-interval 120</c>, <c>--max-tree-size 67108864</c> (2^26); a low match
/// goes to the least-loaded worker (<c>policies/cache_aware.rs</c>, <c>select_worker</c>).</para>
/// <para><see cref="V0"/> (<c>sglang-cache-aware-v0</c>): the older sglang-router <c>RouterArgs</c> defaults
/// (<c>sgl-router/py_src/sglang_router/launch_router.py</c>): 0.5 / 32 / 1.0001 / 60 s / 2^24; a low match goes to the
/// worker with the smallest tree (<c>tree.get_smallest_tenant()</c>).</para>
/// <para>Tree size: upstream's tree holds request text, one tree per model with a character count per worker, cut
/// back to max_tree_size characters per worker every eviction interval. Ours holds the prompt's block hashes, so the
/// budget is converted: blocks = max_tree_size / (<see cref="CharsPerToken"/> × block size), with CharsPerToken the
/// gateway tokenizer's measured 4.2 characters per token on English prose (docs/tokenization.md). 2^26 characters are
/// 998,643 blocks of 16 tokens (16M tokens per worker), 2^24 are 249,660 (4M tokens).</para>
/// </summary>
public sealed record SglangCacheAwareOptions
{
    /// <summary>The current model gateway's CLI defaults.</summary>
    public static SglangCacheAwareOptions Current { get; } = new();

    /// <summary>The older sglang-router CLI defaults.</summary>
    public static SglangCacheAwareOptions V0 { get; } = new()
    {
        CacheThreshold = 0.5,
        BalanceAbsThreshold = 32,
        BalanceRelThreshold = 1.0001,
        EvictionInterval = TimeSpan.FromSeconds(60),
        MaxTreeSizeChars = 1L << 24,
        MissToSmallestTree = true,
    };

    /// <summary>Match rate (matched / prompt tokens) above which the best-matching worker is chosen. Default 0.3.</summary>
    public double CacheThreshold { get; init; } = 0.3;

    /// <summary>Imbalanced when max − min in-flight requests exceeds this (and the relative test holds). Default 64.</summary>
    public int BalanceAbsThreshold { get; init; } = 64;

    /// <summary>Imbalanced when max in-flight exceeds this times min (and the absolute test holds). Default 1.5.</summary>
    public double BalanceRelThreshold { get; init; } = 1.5;

    /// <summary>How often each worker's tree is cut back to <see cref="MaxTreeSizeChars"/>. Default 120 s.</summary>
    public TimeSpan EvictionInterval { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Per-worker tree budget in characters of request text, as upstream counts it. Default 2^26.</summary>
    public long MaxTreeSizeChars { get; init; } = 1L << 26;

    /// <summary>Characters per token used to convert <see cref="MaxTreeSizeChars"/> into blocks. Default 4.2 (the gateway tokenizer on English prose).</summary>
    public double CharsPerToken { get; init; } = 4.2;

    /// <summary>A match at or below the threshold goes to the smallest tree (older router) instead of the least-loaded worker (current gateway). Default false.</summary>
    public bool MissToSmallestTree { get; init; }

    /// <summary>Per-worker tree budget in blocks of <paramref name="blockSize"/> tokens: max_tree_size / (chars per token × block size).</summary>
    public int MaxTreeBlocks(int blockSize) =>
        (int)Math.Clamp(Math.Floor(MaxTreeSizeChars / (CharsPerToken * Math.Max(1, blockSize))), 1, int.MaxValue);

    /// <summary>Applies <c>key=value+…</c> overrides (snake_case upstream names; <c>miss_to_smallest_tree</c> 0/1).</summary>
    public static SglangCacheAwareOptions Parse(string overrides, SglangCacheAwareOptions start, string policyName) =>
        BaselineKnobs.Apply(policyName, overrides, start, Set, o => o.Validate());

    private static SglangCacheAwareOptions? Set(SglangCacheAwareOptions o, string key, double v) => key switch
    {
        "cache_threshold" => o with { CacheThreshold = v },
        "balance_abs_threshold" => o with { BalanceAbsThreshold = (int)v },
        "balance_rel_threshold" => o with { BalanceRelThreshold = v },
        "eviction_interval_secs" => o with { EvictionInterval = TimeSpan.FromSeconds(v) },
        "max_tree_size" => o with { MaxTreeSizeChars = (long)v },
        "chars_per_token" => o with { CharsPerToken = v },
        "miss_to_smallest_tree" => o with { MissToSmallestTree = v != 0 },
        _ => null,
    };

    /// <summary>Every configuration error (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (CacheThreshold is < 0 or > 1)
        {
            errors.Add("cache_threshold must be 0..1");
        }

        if (BalanceAbsThreshold < 0 || BalanceRelThreshold < 0)
        {
            errors.Add("balance thresholds must be >= 0");
        }

        if (EvictionInterval <= TimeSpan.Zero || MaxTreeSizeChars < 1 || !(CharsPerToken > 0))
        {
            errors.Add("eviction_interval_secs, max_tree_size and chars_per_token must be > 0");
        }

        return errors;
    }
}
