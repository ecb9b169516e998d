using Simulator.Simulation;

namespace Simulator.Tests.Simulation;

public class WorkingSetTests
{
    private static RequestRecord Rec(string session, int turn, double arrival, double finish, int prompt) =>
        new(session, turn, "t", arrival, arrival, finish, 0, prompt, 0, 1, false);

    [Fact]
    public void ASessionIdleLongerThanTau_IsAliveButNotInTheWorkingSet()
    {
        // Session a: a 10 s turn, a 190 s human gap, a 10 s turn (contexts 1000 then 2000). Session b: one turn (500) at
        // 0–10 s. Session c: turns at 30 s and 50 s (300, 400). Samples: the arrivals 0, 0, 30, 50, 200.
        var records = new List<RequestRecord>
        {
            Rec("a", 0, 0, 10, 1000), Rec("a", 1, 200, 210, 2000), Rec("b", 0, 0, 10, 500), Rec("c", 0, 30, 35, 300), Rec("c", 1, 50, 55, 400),
        };
        var ws = WorkingSet.Of(records, new HashSet<string> { "a", "b", "c" }, tauSeconds: 60, poolTokens: 4096);

        // Alive: at 0 a+b (twice), at 30 a+c, at 50 a+c, at 200 a's second turn (c ended at 55).
        Assert.Equal((2 * 1500 + 1300 + 1400 + 2000) / 5.0, ws.MeanAliveTokens, 6);

        // W(60): a's first turn is recent until 70 s, so at 200 only its running second turn counts — the same as alive here;
        // with τ = 10 a's first turn has dropped out at 30 and 50.
        Assert.Equal(ws.MeanAliveTokens, ws.MeanRecentTokens, 6);
        var short10 = WorkingSet.Of(records, new HashSet<string> { "a", "b", "c" }, tauSeconds: 10, poolTokens: 4096);
        Assert.Equal((2 * 1500 + 300 + 400 + 2000) / 5.0, short10.MeanRecentTokens, 6);
        Assert.Equal(4096, ws.PoolTokens);
    }

    [Fact]
    public void OneShotAndRejectedRequests_AreNotAgentWork()
    {
        var records = new List<RequestRecord>
        {
            Rec("a", 0, 0, 10, 1000),
            Rec("x", 0, 0, 10, 9999), // not an agent session
            new("a", 1, "t", 5, double.NaN, 5, -1, 7777, 0, 0, true),
        };
        var ws = WorkingSet.Of(records, new HashSet<string> { "a" }, 60, 1);
        Assert.Equal(1000, ws.MeanAliveTokens, 6);
        Assert.Equal(1000, ws.MeanRecentTokens, 6);
    }

    [Fact]
    public void NoAgentRecords_GiveZeros()
    {
        var ws = WorkingSet.Of([], new HashSet<string>(), 60, 10);
        Assert.Equal(0, ws.MeanAliveTokens);
        Assert.Equal(0, ws.MeanRecentTokens);
    }
}
