using Simulator.Compare;
using Simulator.Simulation;

namespace Simulator.Tests.Compare;

public class CompareRegretTests
{
    private static RequestRecord Rec(string session, int turn, int cached, long queued, double ttft, string reason = "load", bool rejected = false) =>
        new(session, turn, "t", 10, 10 + ttft, 20, 0, 1000, cached, 5, rejected) { QueuedPrefillAtDispatch = queued, Reason = reason };

    [Fact]
    public void Of_CountsRequestsTheBaselineServedWithMoreCacheAtNoMoreQueue()
    {
        var mine = new List<RequestRecord>
        {
            Rec("s", 0, cached: 0, queued: 500, ttft: 0.9, reason: "session"),   // baseline: more cached, less queued → counted
            Rec("s", 1, cached: 100, queued: 0, ttft: 0.2),                       // baseline: more cached but more queued → not
            Rec("s", 2, cached: 800, queued: 0, ttft: 0.1),                       // baseline: less cached → not
            Rec("r", 0, cached: 0, queued: 0, ttft: 0.5, reason: "affinity"),     // baseline: more cached, equal queue → counted
            Rec("x", 0, cached: 0, queued: 0, ttft: 0.5, rejected: true),         // rejected: not joined
        };
        var theirs = new List<RequestRecord>
        {
            Rec("s", 0, cached: 640, queued: 0, ttft: 0.3),
            Rec("s", 1, cached: 900, queued: 10, ttft: 0.1),
            Rec("s", 2, cached: 16, queued: 0, ttft: 0.4),
            Rec("r", 0, cached: 320, queued: 0, ttft: 0.6),
            Rec("x", 0, cached: 320, queued: 0, ttft: 0.6),
        };

        var pair = CompareRegret.Of(mine, theirs);
        Assert.Equal(4, pair.Joined);
        Assert.Equal(2, pair.PlacedBetter);
        Assert.Equal(640 + 320, pair.MissedCachedTokens);
        Assert.Equal(0.6, pair.TtftCostSeconds, 9);                           // only the positive difference (0.9 − 0.3)
        Assert.Equal(new[] { "session", "affinity" }, pair.Reasons);
    }
}
