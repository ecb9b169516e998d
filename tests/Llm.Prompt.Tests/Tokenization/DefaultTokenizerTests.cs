using Llm.Prompt.Tokenization;

namespace Llm.Prompt.Tests.Tokenization;

public class DefaultTokenizerTests
{
    private const string English =
        "The gateway sits between applications and a fleet of inference workers. For every request it decides " +
        "who is served next and where, weighing the prefix cache each worker already holds against how busy it is. " +
        "Coding agents alternate model turns and tool calls, and each turn re-sends nearly the whole context, so " +
        "keeping a session on the worker that holds its cache saves most of the prefill work.";

    [Fact]
    public void CountTokens_EnglishProse_AboutFourCharactersPerToken()
    {
        double ratio = (double)English.Length / DefaultTokenizer.Instance.CountTokens(English);
        Assert.InRange(ratio, 3.6, 4.8);
    }

    [Fact]
    public void Encode_IsDeterministicAndMatchesCount()
    {
        var a = new List<int>();
        var b = new List<int>();
        DefaultTokenizer.Instance.Encode(English, a);
        DefaultTokenizer.Instance.Encode(English, b);
        Assert.Equal(a, b);
        Assert.Equal(a.Count, DefaultTokenizer.Instance.CountTokens(English));
    }

    [Fact]
    public void Encode_PublishedIdsAreStableAcrossProcesses()
    {
        // The id of a piece is XXH64(UTF-16LE code units, seed 0x70C3) & 0x7FFFFFFF: fixed by this vector.
        var ids = new List<int>();
        DefaultTokenizer.Instance.Encode("Hello world", ids);
        Assert.Equal(2, ids.Count);
        Assert.Equal(DefaultTokenizer.IdOf("Hello"), ids[0]);
        Assert.Equal(DefaultTokenizer.IdOf(" world"), ids[1]);
    }

    [Theory]
    [InlineData("", 0)]
    [InlineData(" quick", 1)]
    [InlineData(" internationalization", 4)]
    [InlineData("1234567", 3)]
    [InlineData("a\nb", 3)]
    [InlineData("日本語", 3)]
    [InlineData("!!", 2)]
    public void CountTokens_FollowsTheDocumentedRule(string text, int expected)
    {
        Assert.Equal(expected, DefaultTokenizer.Instance.CountTokens(text));
    }

    [Fact]
    public void Encode_ExtendingTextExtendsTokens()
    {
        var a = new List<int>();
        var b = new List<int>();
        DefaultTokenizer.Instance.Encode("System prompt here.\n", a);
        DefaultTokenizer.Instance.Encode("System prompt here.\nUser asks more.", b);
        Assert.Equal(a, b.Take(a.Count));
    }
}
