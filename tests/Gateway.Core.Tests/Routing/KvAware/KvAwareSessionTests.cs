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

    [Fact]
    public void Session_StaysOnItsHolder_WhenOnlyTheDecodeEstimateDiffers()
    {
        // The holder runs long-context decodes (its decode estimate for a long answer is several times the other's),
        // but both first-token estimates are small: the holder serves the cached context at once, the other worker
        // would re-prefill it. The session stays; only the first-token estimate can push it away.
        var fleet = KvAwarePolicyTests.Fleet(2);
        var p = new KvAwarePolicy(_time, new Random(1));
        var context = Chains.Of(1, 1_250); // 20,000 tokens
        var first = Req(context, "agent");
        int holder = p.Route(first, fleet).WorkerIndex;
        p.OnRouted(first, fleet[holder]);
        int other = 1 - holder;
        fleet[holder].OnDispatched(0);
        fleet[holder].OnFirstToken(0, 1_000_000); // 1M context tokens decoding: each step ~9x slower
        var turn = Req(Chains.Extend(context, 5_000_000, 4), "agent", output: 4_000);

        var d = p.Route(turn, fleet);

        Assert.Equal(holder, d.WorkerIndex);
        Assert.Equal("session", d.Reason);
        Assert.True(
            p.EstimateCost(fleet[holder], turn.PromptTokens, d.PredictedCachedTokens, 4_000) > 2 * p.EstimateCost(fleet[other], turn.PromptTokens, 0, 4_000),
            "the holder's whole cost (decode included) is more than twice the other's");

        // Its first-token estimate beyond 8x the best (a queue of ~40 s against ~2.7 s of re-prefill elsewhere) moves it.
        fleet[holder].OnDispatched(400_000);
        var left = p.Route(turn, fleet);
        Assert.Equal(other, left.WorkerIndex);
        Assert.Equal("session-rebind", left.Reason);
    }
}
