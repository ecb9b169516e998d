using System.Text;
using Llm.Prompt.Tokenization;
using Worker.Engine;
using Worker.Generation;

namespace Worker.Tests.Generation;

public class GeneratedTextTests
{
    private static List<string> Feed(GeneratedText g, string text)
    {
        var pieces = new List<string>();
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            pieces.Add(g.Append(ByteTokenizer.FirstByteId + b));
            if (g.Stopped)
            {
                break;
            }
        }

        return pieces;
    }

    [Fact]
    public void WithoutStops_EveryByteIsSentAsItCompletesACharacter()
    {
        var g = new GeneratedText();
        var pieces = Feed(g, "héllo");
        Assert.Equal(["h", "", "é", "l", "l", "o"], pieces);
        Assert.Equal("", g.Finish(FinishReason.Length));
        Assert.Equal("length", g.FinishReason);
        Assert.Equal(6, g.Tokens);
    }

    [Fact]
    public void AStopSequence_CutsTheTextBeforeIt_NeverSendsAByteOfIt()
    {
        var g = new GeneratedText(["o w"]);
        var pieces = Feed(g, "hello world");
        Assert.True(g.Stopped);
        Assert.Equal("stop", g.FinishReason);
        Assert.Equal("hell", g.Text);
        Assert.Equal("hell", string.Concat(pieces));
        Assert.Equal(7, g.Tokens); // "hello w": the token that completed the stop string is counted
        Assert.Equal("", g.Finish(FinishReason.Length)); // the engine's own finish no longer changes anything
        Assert.Equal("stop", g.FinishReason);
        Assert.Equal("", g.Append(ByteTokenizer.FirstByteId + 'x'));
    }

    [Fact]
    public void APossibleStartOfAStop_IsHeldBack_ThenReleasedWhenItTurnsOutNotToBeOne()
    {
        var g = new GeneratedText(["abc"]);
        Assert.Equal("x", g.Append(ByteTokenizer.FirstByteId + 'x'));
        Assert.Equal("", g.Append(ByteTokenizer.FirstByteId + 'a'));
        Assert.Equal("", g.Append(ByteTokenizer.FirstByteId + 'b'));
        Assert.Equal("abd", g.Append(ByteTokenizer.FirstByteId + 'd'));
        Assert.Equal("", g.Append(ByteTokenizer.FirstByteId + 'a'));
        Assert.Equal("a", g.Finish(FinishReason.Length)); // the end of the stream releases the held tail
        Assert.Equal("xabda", g.Text);
        Assert.False(g.Stopped);
    }

    [Fact]
    public void TheEarliestOfSeveralStops_Wins()
    {
        var g = new GeneratedText(["world", "lo"]);
        Feed(g, "hello world");
        Assert.Equal("hel", g.Text);
    }

    [Fact]
    public void AStopAtTheVeryStart_GivesEmptyText()
    {
        var g = new GeneratedText(["\n"]);
        var pieces = Feed(g, "\nrest");
        Assert.Equal("", string.Concat(pieces));
        Assert.True(g.Stopped);
        Assert.Equal(1, g.Tokens);
    }
}
