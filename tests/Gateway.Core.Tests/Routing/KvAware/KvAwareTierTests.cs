using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>kv-aware with workers that have a host tier: a host hit costs its reload, a miss its recompute.</summary>
public class KvAwareTierTests
{
    private const int Bs = 16;
    private readonly FakeTimeProvider _time = new();

    private static RouteRequest Req(ulong[] blocks) => new()
    {
        TenantPath = "t",
        BlockHashes = blocks,
        PromptTokens = blocks.Length * Bs,
        ExpectedOutputTokens = 16,
    };

    [Fact]
    public void ContextInAWorkersHostTier_CountsAsCached_SoTheRequestGoesThere()
    {
        var fleet = KvAwarePolicyTests.Fleet(2, events: true);
        fleet[0].HostReloadSecondsPerToken = 2.6e-6; // 128 KiB per token at 50 GB/s
        var p = new KvAwarePolicy(_time, new Random(1));
        var chain = Chains.Of(1, 400);
        p.Precise.ApplySnapshot(1, 0, []);
        p.Precise.Apply(0, new KvEvent(1, KvEventType.Stored, chain[..100]));
        p.Precise.Apply(0, new KvEvent(2, KvEventType.Stored, chain[100..], null, KvMedium.Cpu));
        fleet[0].OnDispatched(2000); // some queued work on the host-tier worker: a reload still beats recomputing 300 blocks

        var d = p.Route(Req(chain), fleet);

        Assert.Equal(0, d.WorkerIndex);
        Assert.Equal(400 * Bs, d.PredictedCachedTokens);
    }

    [Fact]
    public void HostHit_IsChargedItsReloadTime_SoASlowerReloadThanRecomputeLoses()
    {
        var fleet = KvAwarePolicyTests.Fleet(2, events: true);
        fleet[0].HostReloadSecondsPerToken = 1e-3; // 6.4 s to reload 6,400 tokens; recomputing them takes under 1 s
        var p = new KvAwarePolicy(_time, new Random(1));
        var chain = Chains.Of(1, 400);
        p.Precise.ApplySnapshot(1, 0, []);
        p.Precise.Apply(0, new KvEvent(1, KvEventType.Stored, chain, null, KvMedium.Cpu));

        Assert.Equal(1, p.Route(Req(chain), fleet).WorkerIndex);
    }
}
