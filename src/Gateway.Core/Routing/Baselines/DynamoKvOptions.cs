namespace Gateway.Core.Routing.Baselines;

/// <summary>
/// Knobs of <see cref="DynamoKvPolicy"/>, with Dynamo's defaults: ai-dynamo/dynamo <c>lib/llm/src/kv_router/config.rs</c>
/// <c>KvRouterConfig::default()</c> (and the frontend's <c>--router-*</c> flags): <c>overlap_score_weight 1.0</c>,
/// <c>router_temperature 0.0</c>, <c>use_kv_events true</c>, <c>router_track_active_blocks true</c>,
/// <c>router_track_output_blocks false</c>, <c>router_assume_kv_reuse true</c>; without events (<c>--no-kv-events</c>)
/// <c>router_ttl_secs 120</c>, <c>router_max_tree_size 2^20</c>, <c>router_prune_target_ratio 0.8</c>.
/// Presets: <see cref="Events"/> (<c>dynamo-kv</c>) and <see cref="Approximate"/> (<c>dynamo-kv-approx</c>).
/// </summary>
public sealed record DynamoKvOptions
{
    /// <summary>Dynamo's default: overlap from the workers' KV events.</summary>
    public static DynamoKvOptions Events { get; } = new();

    /// <summary>Dynamo's <c>--no-kv-events</c> mode: a routed prefix is assumed cached for the TTL.</summary>
    public static DynamoKvOptions Approximate { get; } = new() { UseKvEvents = false };

    /// <summary>Weight of the prefill blocks in the logit (<c>overlap_score_weight</c>). Default 1.0.</summary>
    public double OverlapScoreWeight { get; init; } = 1.0;

    /// <summary>Softmax temperature over the normalised logits; 0 picks the lowest logit (<c>router_temperature</c>). Default 0.</summary>
    public double Temperature { get; init; }

    /// <summary>Overlap from KV events (true) or from an insert-on-route index with a TTL (false). Default true.</summary>
    public bool UseKvEvents { get; init; } = true;

    /// <summary>Without events: how long a routed block is assumed cached (<c>router_ttl_secs</c>). Default 120 s.</summary>
    public TimeSpan Ttl { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Without events: (block, worker) entries above which the index is pruned (<c>router_max_tree_size</c>). Default 2^20.</summary>
    public int MaxTreeSize { get; init; } = 1 << 20;

    /// <summary>Without events: pruning cuts the index to this share of the maximum, soonest-expiring first (<c>router_prune_target_ratio</c>). Default 0.8.</summary>
    public double PruneTargetRatio { get; init; } = 0.8;

    /// <summary>Applies <c>key=value+…</c> overrides (Dynamo's names: <c>overlap_score_weight</c>, <c>router_temperature</c>, <c>use_kv_events</c> 0/1, <c>router_ttl_secs</c>, <c>router_max_tree_size</c>, <c>router_prune_target_ratio</c>).</summary>
    public static DynamoKvOptions Parse(string overrides, DynamoKvOptions start, string policyName) =>
        BaselineKnobs.Apply(policyName, overrides, start, Set, o => o.Validate());

    private static DynamoKvOptions? Set(DynamoKvOptions o, string key, double v) => key switch
    {
        "overlap_score_weight" => o with { OverlapScoreWeight = v },
        "router_temperature" => o with { Temperature = v },
        "use_kv_events" => o with { UseKvEvents = v != 0 },
        "router_ttl_secs" => o with { Ttl = TimeSpan.FromSeconds(v) },
        "router_max_tree_size" => o with { MaxTreeSize = (int)Math.Min(v, int.MaxValue) },
        "router_prune_target_ratio" => o with { PruneTargetRatio = v },
        _ => null,
    };

    /// <summary>Every configuration error (empty when valid).</summary>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        if (OverlapScoreWeight < 0 || Temperature < 0)
        {
            errors.Add("overlap_score_weight and router_temperature must be >= 0");
        }

        if (Ttl <= TimeSpan.Zero || MaxTreeSize < 1 || PruneTargetRatio is < 0 or > 1)
        {
            errors.Add("router_ttl_secs > 0, router_max_tree_size >= 1, router_prune_target_ratio 0..1");
        }

        return errors;
    }
}
