namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Knobs of <see cref="LlmdPolicy"/> (llm-d's EndpointPicker: weighted scorers, max-score picker), with two presets.
/// <para><see cref="Default"/> (<c>llm-d</c>): the default scheduling profile of llm-d-inference-scheduler's Helm chart,
/// <c>config/charts/epplib/templates/_config.yaml</c> (<c>default-plugins.yaml</c>): <c>queue-scorer</c> weight 2,
/// <c>kv-cache-utilization-scorer</c> weight 2, <c>prefix-cache-scorer</c> weight 3 (the approximate prefix index of
/// <c>pkg/epp/framework/plugins/requestcontrol/dataproducer/approximateprefix</c>, defaults in its <c>types.go</c>:
/// autoTune true, so the block size and per-server LRU capacity are the worker's own, 31,250 entries when unknown;
/// <c>maxPrefixBlocksToMatch 256</c>), picked by <c>max-score-picker</c>.</para>
/// <para><see cref="PreciseProfile"/> (<c>llm-d-precise</c>): <c>precise-prefix-cache-scorer</c> (KV events,
/// <c>pkg/epp/framework/plugins/scheduling/scorer/preciseprefixcache</c>, speculative indexing off by default) weight 3,
/// <c>kv-cache-utilization-scorer</c> 2, <c>queue-scorer</c> 2: the chart's weights with the prefix scorer swapped for the
/// precise one. The repository's sample <c>deploy/config/epp-precise-prefix-cache-config.yaml</c> weighs them 2 / 1 / 1
/// (the same ratio with the prefix scorer at half rather than 3/7 of the total):
/// <c>llm-d-precise:prefix_weight=2+kv_cache_utilization_weight=1+queue_weight=1</c>.</para>
/// </summary>
public sealed record LlmdOptions
{
    /// <summary>The Helm chart's default profile (approximate prefix scorer).</summary>
    public static LlmdOptions Default { get; } = new();

    /// <summary>The precise prefix-cache profile (KV events).</summary>
    public static LlmdOptions PreciseProfile { get; } = new() { Precise = true };

    /// <summary>Weight of the prefix-cache scorer. Default 3.</summary>
    public double PrefixWeight { get; init; } = 3;

    /// <summary>Weight of the queue scorer (min-max of the workers' waiting queues). Default 2.</summary>
    public double QueueWeight { get; init; } = 2;

    /// <summary>Weight of the KV-cache utilisation scorer (1 − usage). Default 2.</summary>
    public double KvCacheUtilizationWeight { get; init; } = 2;

    /// <summary>Prefix scorer fed by KV events (precise) instead of the routing history (approximate). Default false.</summary>
    public bool Precise { get; init; }

    /// <summary>Approximate scorer: most leading blocks hashed and matched (<c>maxPrefixBlocksToMatch</c>). Default 256.</summary>
    public int MaxPrefixBlocks { get; init; } = 256;

    /// <summary>Approximate scorer: per-worker LRU entries when the worker reports no KV capacity (<c>lruCapacityPerServer</c>). Default 31,250.</summary>
    public int LruCapacityPerServer { get; init; } = 31_250;

    /// <summary>Applies <c>key=value+…</c> overrides (<c>prefix_weight</c>, <c>queue_weight</c>, <c>kv_cache_utilization_weight</c>, <c>precise</c> 0/1, <c>max_prefix_blocks</c>, <c>lru_capacity_per_server</c>).</summary>
    public static LlmdOptions Parse(string overrides, LlmdOptions start, string policyName) =>
        BaselineKnobs.Apply(policyName, overrides, start, Set, o => o.Validate());

    private static LlmdOptions? Set(LlmdOptions o, string key, double v) => key switch
    {
        "prefix_weight" => o with { PrefixWeight = v },
        "queue_weight" => o with { QueueWeight = v },
        "kv_cache_utilization_weight" => o with { KvCacheUtilizationWeight = v },
        "precise" => o with { Precise = v != 0 },
        "max_prefix_blocks" => o with { MaxPrefixBlocks = (int)Math.Min(v, int.MaxValue) },
        "lru_capacity_per_server" => o with { LruCapacityPerServer = (int)Math.Min(v, int.MaxValue) },
        _ => null,
    };

    /// <summary>Every configuration error (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (PrefixWeight < 0 || QueueWeight < 0 || KvCacheUtilizationWeight < 0)
        {
            errors.Add("scorer weights must be >= 0");
        }

        if (MaxPrefixBlocks < 1 || LruCapacityPerServer < 1)
        {
            errors.Add("max_prefix_blocks and lru_capacity_per_server must be >= 1");
        }

        return errors;
    }
}
