using System.Text.Json;
using Worker.Engine;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>
/// Writes <c>GET /worker/state</c>. Engine counters are copied as they are; rates are wall-clock rates of this
/// process (the profile's modelled rates divided by the time scale), so a router's cost model can use them as is.
/// </summary>
internal static class WorkerStateWriter
{
    public static void Write(Utf8JsonWriter w, WorkerContext ctx, EngineState s)
    {
        double scale = ctx.Loop.TimeScale;
        double wallFactor = scale > 0 ? 1.0 / scale : 1.0;
        w.WriteStartObject();
        w.WriteString("model", ctx.ServedModel);
        w.WriteString("profile", ctx.Profile.Name);
        w.WriteNumber("block_size", ctx.Options.BlockSize);
        w.WriteNumber("kv_blocks_total", s.KvBlocksTotal);
        w.WriteNumber("kv_blocks_used", s.KvBlocksUsed);
        w.WriteNumber("kv_blocks_pinned", s.KvBlocksPinned);
        w.WriteNumber("kv_blocks_cached", s.KvBlocksCached);
        w.WriteNumber("waiting_requests", s.WaitingRequests);
        w.WriteNumber("running_requests", s.RunningRequests);
        w.WriteNumber("waiting_tokens", s.WaitingTokens);
        w.WriteNumber("tokens_per_second", Math.Round(ctx.Loop.TokensPerSecond, 3));
        w.WriteNumber("prefill_tokens_per_second", Math.Round(s.PrefillTokensPerSecond * wallFactor, 3));
        w.WriteNumber("decode_step_seconds", s.DecodeStepSeconds * (scale > 0 ? scale : 1.0));
        w.WriteNumber("prefix_cache_query_tokens", s.PrefixCacheQueryTokens);
        w.WriteNumber("prefix_cache_hit_tokens", s.PrefixCacheHitTokens);
        w.WriteNumber("pins_dropped_total", s.PinsDroppedTotal);
        w.WriteNumber("pins_expired_total", s.PinsExpiredTotal);
        w.WriteNumber("kv_event_seq", s.KvEventSeq);
        w.WriteNumber("time_scale", scale);
        w.WriteNumber("max_model_len", ctx.MaxModelLength);
        w.WriteNumber("kv_blocks_free", s.KvBlocksFree);
        if (double.IsFinite(s.KvEvictionAgeSeconds))
        {
            w.WriteNumber("kv_eviction_age_s", Math.Round(s.KvEvictionAgeSeconds, 3)); // already wall seconds (the engine's TimeProvider)
        }
        else
        {
            w.WriteNull("kv_eviction_age_s"); // nothing evicted yet
        }
        w.WriteNumber("pins_active", s.PinsActive);
        w.WriteNumber("prefix_cache_host_hit_tokens", s.PrefixCacheHostHitTokens);
        w.WriteNumber("host_kv_blocks_total", s.HostKvBlocksTotal);
        w.WriteNumber("host_kv_blocks_cached", s.HostKvBlocksCached);
        w.WriteNumber("host_kv_blocks_pinned", s.HostKvBlocksPinned);
        w.WriteNumber("host_kv_stores_total", s.HostKvStoresTotal);
        w.WriteNumber("host_kv_evictions_total", s.HostKvEvictionsTotal);
        w.WriteNumber("host_kv_reloaded_blocks_total", s.HostKvReloadedBlocksTotal);
        // Wall seconds to reload one token's KV from host (the modelled copy time stretched by the time scale), for routers.
        w.WriteNumber("host_reload_seconds_per_token", s.HostToDeviceBytesPerSecond > 0 ? s.KvBytesPerToken / s.HostToDeviceBytesPerSecond * (scale > 0 ? scale : 1.0) : 0);
        w.WriteNumber("preemptions_total", s.PreemptionsTotal);
        w.WriteNumber("prompt_tokens_total", s.PromptTokensTotal);
        w.WriteNumber("generated_tokens_total", s.GeneratedTokensTotal);
        w.WriteNumber("engine_steps_total", s.StepsTotal);
        w.WriteNumber("engine_busy_seconds", Math.Round(s.BusySeconds, 6));
        w.WriteBoolean("draining", ctx.Draining);
        w.WriteEndObject();
    }
}
