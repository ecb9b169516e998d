using Worker.Contract;
using Worker.Engine;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>
/// Builds <c>GET /worker/state</c>. Engine counters are copied as they are; rates are wall-clock rates of this
/// process (the profile's modelled rates divided by the time scale), so a router's cost model can use them as is.
/// </summary>
internal static class WorkerStateWriter
{
    public static WorkerStateBody Build(WorkerContext ctx, EngineState s)
    {
        double scale = ctx.Loop.TimeScale;
        double wallFactor = scale > 0 ? 1.0 / scale : 1.0;
        double stretch = scale > 0 ? scale : 1.0;
        return new WorkerStateBody
        {
            Model = ctx.ServedModel,
            Profile = ctx.Profile.Name,
            BlockSize = ctx.Options.BlockSize,
            KvBlocksTotal = s.KvBlocksTotal,
            KvBlocksUsed = s.KvBlocksUsed,
            KvBlocksPinned = s.KvBlocksPinned,
            KvBlocksCached = s.KvBlocksCached,
            WaitingRequests = s.WaitingRequests,
            RunningRequests = s.RunningRequests,
            WaitingTokens = s.WaitingTokens,
            TokensPerSecond = Math.Round(ctx.Loop.TokensPerSecond, 3),
            PrefillTokensPerSecond = Math.Round(s.PrefillTokensPerSecond * wallFactor, 3),
            DecodeStepSeconds = s.DecodeStepSeconds * stretch,
            PrefixCacheQueryTokens = s.PrefixCacheQueryTokens,
            PrefixCacheHitTokens = s.PrefixCacheHitTokens,
            PinsDroppedTotal = s.PinsDroppedTotal,
            PinsExpiredTotal = s.PinsExpiredTotal,
            PinCostBlocksTotal = s.PinCostBlocksTotal,
            PinSavedBlocksTotal = s.PinSavedBlocksTotal,
            KvEventSeq = s.KvEventSeq,
            TimeScale = scale,
            MaxModelLength = ctx.MaxModelLength,
            KvBlocksFree = s.KvBlocksFree,
            // Already wall seconds (the engine's TimeProvider); null while nothing was evicted yet.
            KvEvictionAgeSeconds = double.IsFinite(s.KvEvictionAgeSeconds) ? Math.Round(s.KvEvictionAgeSeconds, 3) : null,
            PinsActive = s.PinsActive,
            PrefixCacheHostHitTokens = s.PrefixCacheHostHitTokens,
            HostKvBlocksTotal = s.HostKvBlocksTotal,
            HostKvBlocksCached = s.HostKvBlocksCached,
            HostKvBlocksPinned = s.HostKvBlocksPinned,
            HostKvStoresTotal = s.HostKvStoresTotal,
            HostKvEvictionsTotal = s.HostKvEvictionsTotal,
            HostKvReloadedBlocksTotal = s.HostKvReloadedBlocksTotal,
            // Wall seconds to reload one token's KV from host (the modelled copy time stretched by the time scale), for routers.
            HostReloadSecondsPerToken = s.HostToDeviceBytesPerSecond > 0 ? s.KvBytesPerToken / s.HostToDeviceBytesPerSecond * stretch : 0,
            PreemptionsTotal = s.PreemptionsTotal,
            PromptTokensTotal = s.PromptTokensTotal,
            GeneratedTokensTotal = s.GeneratedTokensTotal,
            EngineStepsTotal = s.StepsTotal,
            EngineBusySeconds = Math.Round(s.BusySeconds, 6),
            Draining = ctx.Draining,
        };
    }
}
