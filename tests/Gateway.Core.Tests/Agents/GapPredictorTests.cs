using Gateway.Core.Agents;

namespace Gateway.Core.Tests.Agents;

public class GapPredictorTests
{
    [Fact]
    public void Predict_NoData_UsesTracePriors()
    {
        var p = new GapPredictor();
        var tool = p.Predict(GapKind.Tool, "t", "a", "Bash");
        var human = p.Predict(GapKind.Human, "t", "a", "*");
        Assert.InRange(tool.Median, 8.9, 9.1);
        Assert.InRange(tool.Quantile(0.9), 65, 77);
        Assert.InRange(human.Median, 200, 220);
        Assert.Equal(0, tool.Weight);
    }

    [Fact]
    public void Predict_ManyObservations_ConvergesToToolsOwnDistribution()
    {
        var p = new GapPredictor();
        var rng = new Random(7);
        for (int i = 0; i < 400; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "Bash", Math.Exp(Math.Log(2) + 0.3 * Gauss(rng)));
            p.Observe(GapKind.Tool, "t", "a", "Test", Math.Exp(Math.Log(60) + 0.3 * Gauss(rng)));
        }

        var bash = p.Predict(GapKind.Tool, "t", "a", "Bash");
        var test = p.Predict(GapKind.Tool, "t", "a", "Test");
        Assert.InRange(bash.Median, 1.7, 2.4);
        Assert.InRange(test.Median, 50, 72);
        Assert.InRange(bash.Cdf(4), 0.9, 1.0);
        Assert.InRange(test.Cdf(4), 0, 0.05);
    }

    [Fact]
    public void Predict_UnseenTool_FallsBackToAgentKindLevel()
    {
        var p = new GapPredictor();
        for (int i = 0; i < 200; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "Bash", 3);
        }

        var unseen = p.Predict(GapKind.Tool, "t", "a", "NeverSeen");
        var otherTenant = p.Predict(GapKind.Tool, "u", "a", "NeverSeen");
        Assert.InRange(unseen.Median, 2.8, 3.2);
        Assert.InRange(otherTenant.Median, 2.8, 3.2); // global level learnt too
    }

    [Fact]
    public void Predict_ThinData_IsShrunkTowardParent()
    {
        var p = new GapPredictor();
        p.Observe(GapKind.Tool, "t", "a", "Bash", 1000);
        var one = p.Predict(GapKind.Tool, "t", "a", "Bash");
        Assert.True(one.Median < 1000 / 2.0, $"one observation should not move the median all the way: {one.Median}");
        Assert.True(one.Median > 9, "but it should move it up from the prior");
    }

    [Fact]
    public void Observe_Decay_FollowsAShift()
    {
        var p = new GapPredictor(new GapPredictorOptions { Decay = 0.95 });
        for (int i = 0; i < 200; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "Bash", 100);
        }

        for (int i = 0; i < 100; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "Bash", 2);
        }

        Assert.InRange(p.Predict(GapKind.Tool, "t", "a", "Bash").Median, 1.5, 3);
    }

    [Fact]
    public void Predict_SessionLevel_IsMostSpecific_AndForgettable()
    {
        var p = new GapPredictor();
        for (int i = 0; i < 50; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "*", 5);
            p.Observe(GapKind.Tool, "t", "a", "*", 40, session: "slow");
        }

        Assert.True(p.Predict(GapKind.Tool, "t", "a", "*", "slow").Median > 25);
        p.ForgetSession("t", "slow");
        Assert.True(p.Predict(GapKind.Tool, "t", "a", "*", "slow").Median < 25);
    }

    [Fact]
    public void SessionLevels_PastMaxKeys_ForgetTheLeastRecentlyObserved_SoNewSessionsStillLearn()
    {
        var p = new GapPredictor(new GapPredictorOptions { MaxKeys = 100 });
        for (int i = 0; i < 1000; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "*", 5, session: "s" + i);
        }

        for (int i = 0; i < 50; i++)
        {
            p.Observe(GapKind.Tool, "t", "a", "*", 40, session: "late");
        }

        Assert.Equal(100, p.SessionLevels);
        Assert.True(p.Predict(GapKind.Tool, "t", "a", "*", "late").Median > 25);
    }

    [Fact]
    public void SessionLevels_NotObservedForTheAge_AreForgotten()
    {
        var time = new FakeTimeProvider();
        var p = new GapPredictor(null, time, TimeSpan.FromMinutes(10));
        p.Observe(GapKind.Tool, "t", "a", "*", 40, session: "gone");
        time.Advance(TimeSpan.FromMinutes(11));
        p.Observe(GapKind.Tool, "t", "a", "*", 5, session: "here");

        Assert.Equal(1, p.SessionLevels);
    }

    private static double Gauss(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
}
