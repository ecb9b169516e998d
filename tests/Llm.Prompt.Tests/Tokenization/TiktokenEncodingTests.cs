using Llm.Prompt.Hashing;
using Llm.Prompt.Tokenization;

namespace Llm.Prompt.Tests.Tokenization;

/// <summary>
/// The tiktoken encodings by name (Microsoft.ML.Tokenizers with its offline data packages). Expected ids are the
/// reference's: js-tiktoken 1.0.21 (the JavaScript port of OpenAI's tiktoken, npm), <c>getEncoding(name).encode(text)</c>.
/// </summary>
public sealed class TiktokenEncodingTests
{
    public static TheoryData<string, string, int[]> ReferenceIds => new()
    {
        { "o200k_base", "hello world", [24912, 2375] },
        { "o200k_base", "tiktoken is great!", [83, 8251, 2488, 382, 2212, 0] },
        { "o200k_base", "The quick brown fox jumps over the lazy dog.", [976, 4853, 19705, 68347, 65613, 1072, 290, 29082, 6446, 13] },
        { "o200k_base", "def add(a, b):\n    return a + b\n", [1314, 1147, 6271, 11, 287, 1883, 271, 622, 261, 659, 287, 198] },
        { "o200k_base", "日本語のテキスト 🚀", [9048, 40909, 3385, 16056, 18368, 38236, 169883, 222] },
        { "o200k_base", "1234567890", [7633, 19354, 29338, 15] },
        { "cl100k_base", "hello world", [15339, 1917] },
        { "cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0] },
        { "cl100k_base", "The quick brown fox jumps over the lazy dog.", [791, 4062, 14198, 39935, 35308, 927, 279, 16053, 5679, 13] },
        { "cl100k_base", "def add(a, b):\n    return a + b\n", [755, 923, 2948, 11, 293, 997, 262, 471, 264, 489, 293, 198] },
        { "cl100k_base", "日本語のテキスト 🚀", [9080, 22656, 45918, 252, 16144, 57933, 62903, 71634, 11410, 248, 222] },
        { "cl100k_base", "1234567890", [4513, 10961, 16474, 15] },
    };

    [Theory]
    [MemberData(nameof(ReferenceIds))]
    public void Encode_KnownText_GivesTheReferenceIds(string encoding, string text, int[] expected)
    {
        var tokenizer = Tokenizers.Create(encoding);
        var ids = new List<int>();
        tokenizer.Encode(text, ids);
        Assert.Equal(expected, ids);
        Assert.Equal(expected.Length, tokenizer.CountTokens(text));
    }

    [Theory]
    [InlineData("o200k_base", 199999)]
    [InlineData("cl100k_base", 100257)]
    public void Encode_EndOfTextInTheText_IsTheSpecialId(string encoding, int endOfText)
    {
        var ids = new List<int>();
        Tokenizers.Create(encoding).Encode("hi<|endoftext|>", ids);
        Assert.Equal(endOfText, ids[^1]);
        Assert.Equal(2, ids.Count);
    }

    [Fact]
    public void Create_ByName_OneInstancePerEncoding_NamedAfterIt()
    {
        Assert.Same(Tokenizers.Create("o200k_base"), Tokenizers.Create("o200k_base"));
        Assert.Equal("o200k_base", Tokenizers.Create("o200k_base").Name);
        Assert.Equal("cl100k_base", Tokenizers.Create("cl100k_base").Name);
        Assert.Throws<ArgumentException>(() => TiktokenEncoding.Get("p50k_base"));
    }

    [Fact]
    public void Encode_AppendsToTheList_BlockHashesFollowTheIds()
    {
        var tokenizer = Tokenizers.Create("o200k_base");
        var ids = new List<int> { 7 };
        string text = string.Concat(Enumerable.Repeat("The quick brown fox jumps over the lazy dog. ", 8));
        tokenizer.Encode(text, ids);
        Assert.Equal(7, ids[0]);
        Assert.Equal(1 + tokenizer.CountTokens(text), ids.Count);
        // Block hashes are a function of the ids: the same text hashes differently under another vocabulary.
        var o200k = ids.Skip(1).ToArray();
        var cl100k = new List<int>();
        Tokenizers.Create("cl100k_base").Encode(text, cl100k);
        var salt = BlockHasher.SaltOf("acme");
        Assert.Equal(BlockHasher.ComputeChain(o200k, salt, 16), BlockHasher.ComputeChain(o200k.ToArray(), salt, 16));
        Assert.NotEqual(BlockHasher.ComputeChain(o200k, salt, 16)[0], BlockHasher.ComputeChain(cl100k.ToArray(), salt, 16)[0]);
    }

    [Fact]
    public void OurBpeLoader_OnTheDataPackagesCl100kRanks_AgreesIdForIdWithMlTokenizers()
    {
        // Two independent implementations over the same vocabulary (the ranks the data package embeds).
        using var ranks = TiktokenEncoding.OpenRanks("cl100k_base");
        var ours = Tokenizers.FromTiktoken(ranks, name: "bpe:cl100k_base");
        var theirs = Tokenizers.Create("cl100k_base");
        string[] texts =
        [
            "The quick brown fox jumps over the lazy dog.",
            "def add(a, b):\n    return a + b\n\n\n",
            "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi!\"}]}",
            "https://example.com/path?query=1&x=2 — don't, we'll, they're",
            "日本語のテキスト, 한국어, Ελληνικά, кириллица 🚀👩‍👩‍👧",
            "    indented\ttabs\r\n  trailing   ",
            new string('a', 500) + " 1234567890 3.14159",
        ];
        foreach (string text in texts)
        {
            var a = new List<int>();
            var b = new List<int>();
            ours.Encode(text, a);
            theirs.Encode(text, b);
            Assert.Equal(b, a);
        }
    }
}
