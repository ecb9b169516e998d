using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>kv-aware's session rule: a session goes back to the worker that holds its context unless that worker is overloaded.</summary>
public class KvAwareSessionTests
{
    private const int Bs = 16;
    private readonly FakeTimeProvider _time = new();

    private static RouteRequest Req(ulong[] blocks, string session, int output = 64) => new()
    {
        TenantPath = "t",
        SessionId = session,
        BlockHashes = blocks,
        PromptTokens = blocks.Length * Bs,
        ExpectedOutputTokens = output,
    };

    // A holder running long-context decodes: 1M context tokens decoding make each step ~9x slower, so its decode
    // estimate for a 4,000-token answer is several times the other worker's, while its first token is near 0 (the
    // 20,000-token context is cached there) and the other worker would re-prefill it (~2.7 s).
    private (KvAwarePolicy Policy, List<WorkerInfo> Fleet, int Holder, RouteRequest Turn) DecodeHeavyHolder(bool hostTier)
    {
        var fleet = KvAwarePolicyTests.Fleet(2);
        foreach (var w in fleet)
        {
            w.HostReloadSecondsPerToken = hostTier ? 2.6e-6 : 0; // 128 KiB per token at 50 GB/s
        }

        var p = new KvAwarePolicy(_time, new Random(1));
        var context = Chains.Of(1, 1_250);
        var first = Req(context, "agent");
        int holder = p.Route(first, fleet).WorkerIndex;
        p.OnRouted(first, fleet[holder]);
        fleet[holder].OnDispatched(0);
        fleet[holder].OnFirstToken(0, 1_000_000);
        var turn = Req(Chains.Extend(context, 5_000_000, 4), "agent", output: 4_000);
        Assert.True(
            p.EstimateCost(fleet[holder], turn.PromptTokens, context.Length * Bs, 4_000) > 2 * p.EstimateCost(fleet[1 - holder], turn.PromptTokens, 0, 4_000),
            "the holder's whole cost (decode included) is more than twice the other's");
        return (p, fleet, holder, turn);
    }

    [Fact]
    public void HolderWithAHostTier_KeepsItsSession_WhenOnlyTheDecodeEstimateDiffers()
    {
        var (p, fleet, holder, turn) = DecodeHeavyHolder(hostTier: true);

        var d = p.Route(turn, fleet);

        Assert.Equal(holder, d.WorkerIndex);
        Assert.Equal("session", d.Reason);

        // Its first-token estimate beyond 8x the best (a queue of ~40 s against ~2.7 s of re-prefill elsewhere) moves it.
        fleet[holder].OnDispatched(400_000);
        var left = p.Route(turn, fleet);
        Assert.Equal(1 - holder, left.WorkerIndex);
        Assert.Equal("session-rebind", left.Reason);
    }

    [Fact]
    public void HbmOnlyHolder_ComparesWholeCosts_SoAMuchSlowerDecodeMovesTheSession()
    {
        var (p, fleet, holder, turn) = DecodeHeavyHolder(hostTier: false);

        var d = p.Route(turn, fleet);

        Assert.Equal(1 - holder, d.WorkerIndex);
        Assert.Equal("session-rebind", d.Reason);
    }
}
