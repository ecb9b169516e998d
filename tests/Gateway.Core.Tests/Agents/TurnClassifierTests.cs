using Gateway.Core.Agents;

namespace Gateway.Core.Tests.Agents;

public class TurnClassifierTests
{
    [Theory]
    [InlineData("tool_calls")]
    [InlineData("tool_use")]
    public void Classify_ToolFinishReason_OpensToolGap(string reason)
    {
        var o = TurnClassifier.Classify(reason, ["Bash"]);
        Assert.Equal(GapKind.Tool, o.Gap);
        Assert.Equal("Bash", o.Tool);
    }

    [Fact]
    public void Classify_StopWithoutTools_OpensHumanGap()
    {
        Assert.Equal(GapKind.Human, TurnClassifier.Classify("stop", null).Gap);
        Assert.Equal(GapKind.Human, TurnClassifier.Classify("length", []).Gap);
    }

    [Fact]
    public void Classify_SeveralTools_LabelIsSortedDistinct()
    {
        var o = TurnClassifier.Classify("tool_calls", ["Read", "Bash", "Read"]);
        Assert.Equal("Bash+Read", o.Tool);
        Assert.Equal(TurnClassifier.AnyTool, TurnClassifier.Classify("tool_calls", null).Tool);
    }
}
