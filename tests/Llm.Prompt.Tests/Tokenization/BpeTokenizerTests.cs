using System.Text;
using System.Text.Json;
using Llm.Prompt.Tokenization;

namespace Llm.Prompt.Tests.Tokenization;

/// <summary>
/// The BPE loaders on tiny vocabularies written here: every byte is a token with id = byte value
/// (tokenizer.json vocab in GPT-2's byte-level alphabet, .tiktoken with rank = byte value), plus a few merges
/// whose results are checked id by id.
/// </summary>
public sealed class BpeTokenizerTests : IDisposable
{
    // Merges in rank order; each result gets id 256 + rank. Both files describe the same tokenizer.
    private static readonly (string A, string B)[] Merges =
    [
        ("h", "e"),        // 256 he
        ("l", "l"),        // 257 ll
        ("he", "ll"),      // 258 hell
        ("hell", "o"),     // 259 hello
        (" ", "w"),        // 260 " w"
        ("o", "r"),        // 261 or
        (" w", "or"),      // 262 " wor"
        ("l", "d"),        // 263 ld
        (" wor", "ld"),    // 264 " world"
        ("a", "a"),        // 265 aa
    ];

    private const int EndOfText = 300;

    private readonly string _dir = Directory.CreateTempSubdirectory("bpe-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static string Mapped(string s) => ByteLevelMap.Encode(Encoding.UTF8.GetBytes(s));

    /// <summary>A GPT-2 style tokenizer.json (ByteLevel pre-tokenizer with the GPT-2 regex).</summary>
    internal static string HuggingFaceJson(bool mergesAsPairs = false, int byteCount = 256, string? splitRegex = null, bool ignoreMerges = false)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteStartArray("added_tokens");
            w.WriteStartObject();
            w.WriteNumber("id", EndOfText);
            w.WriteString("content", "<|endoftext|>");
            w.WriteBoolean("special", true);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteNull("normalizer");
            w.WriteStartObject("pre_tokenizer");
            if (splitRegex is null)
            {
                w.WriteString("type", "ByteLevel");
                w.WriteBoolean("add_prefix_space", false);
                w.WriteBoolean("trim_offsets", true);
                w.WriteBoolean("use_regex", true);
            }
            else
            {
                w.WriteString("type", "Sequence");
                w.WriteStartArray("pretokenizers");
                w.WriteStartObject();
                w.WriteString("type", "Split");
                w.WriteStartObject("pattern");
                w.WriteString("Regex", splitRegex);
                w.WriteEndObject();
                w.WriteString("behavior", "Isolated");
                w.WriteBoolean("invert", false);
                w.WriteEndObject();
                w.WriteStartObject();
                w.WriteString("type", "ByteLevel");
                w.WriteBoolean("add_prefix_space", false);
                w.WriteBoolean("use_regex", false);
                w.WriteEndObject();
                w.WriteEndArray();
            }

            w.WriteEndObject();
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel");
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteBoolean("ignore_merges", ignoreMerges);
            w.WriteStartObject("vocab");
            for (int b = 0; b < byteCount; b++)
            {
                w.WriteNumber(ByteLevelMap.ToChar((byte)b).ToString(), b);
            }

            for (int i = 0; i < Merges.Length; i++)
            {
                w.WriteNumber(Mapped(Merges[i].A + Merges[i].B), 256 + i);
            }

            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (a, b) in Merges)
            {
                if (mergesAsPairs)
                {
                    w.WriteStartArray();
                    w.WriteStringValue(Mapped(a));
                    w.WriteStringValue(Mapped(b));
                    w.WriteEndArray();
                }
                else
                {
                    w.WriteStringValue(Mapped(a) + " " + Mapped(b));
                }
            }

            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>The same vocabulary as a .tiktoken ranks file.</summary>
    internal static string TiktokenText()
    {
        var sb = new StringBuilder();
        for (int b = 0; b < 256; b++)
        {
            sb.Append(Convert.ToBase64String([(byte)b])).Append(' ').Append(b).Append('\n');
        }

        for (int i = 0; i < Merges.Length; i++)
        {
            sb.Append(Convert.ToBase64String(Encoding.UTF8.GetBytes(Merges[i].A + Merges[i].B))).Append(' ').Append(256 + i).Append('\n');
        }

        return sb.ToString();
    }

    private string WriteFile(string name, string content)
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    private BpeTokenizer HfTokenizer() => Tokenizers.Load(WriteFile("tokenizer.json", HuggingFaceJson()));

    private BpeTokenizer TiktokenTokenizer() =>
        Tokenizers.Load(WriteFile("tiny.tiktoken", TiktokenText()), new BpeOptions
        {
            SpecialTokens = new Dictionary<string, int> { ["<|endoftext|>"] = EndOfText },
        });

    private static int[] Ids(ITokenizer t, string s)
    {
        var list = new List<int>();
        t.Encode(s, list);
        Assert.Equal(list.Count, t.CountTokens(s));
        return list.ToArray();
    }

    public static TheoryData<string, int[]> KnownEncodings => new()
    {
        { "hello world", [259, 264] },
        { "hello", [259] },
        { "hellx", [258, 'x'] },
        { " worldly", [264, 'l', 'y'] },
        { "aaaaa", [265, 265, 'a'] },                 // equal ranks merge leftmost first
        { "xyz", ['x', 'y', 'z'] },                   // no merges: one token per byte
        { "hello<|endoftext|>world", [259, EndOfText, 'w', 261, 263] },
        { "<|endoftext|><|endoftext|>", [EndOfText, EndOfText] },
        { "😀", [0xF0, 0x9F, 0x98, 0x80] },         // UTF-8 bytes of U+1F600
        { "", [] },
    };

    [Theory]
    [MemberData(nameof(KnownEncodings))]
    public void Encode_HuggingFaceJson_ProducesKnownIds(string text, int[] expected)
    {
        Assert.Equal(expected, Ids(HfTokenizer(), text));
    }

    [Theory]
    [MemberData(nameof(KnownEncodings))]
    public void Encode_Tiktoken_SameVocabularyGivesSameIds(string text, int[] expected)
    {
        Assert.Equal(expected, Ids(TiktokenTokenizer(), text));
    }

    [Fact]
    public void Load_MergesAsPairs_SameAsMergesAsStrings()
    {
        var pairs = Tokenizers.FromHuggingFaceJson(HuggingFaceJson(mergesAsPairs: true));
        var strings = Tokenizers.FromHuggingFaceJson(HuggingFaceJson());
        Assert.Equal(Ids(strings, "hello world aaaa"), Ids(pairs, "hello world aaaa"));
        Assert.Equal(Merges.Length, pairs.MergeCount);
    }

    [Fact]
    public void Encode_Gpt2PatternVersusCl100k_SplitsDigitsDifferently()
    {
        // GPT-2 keeps a digit run in one piece; cl100k cuts it into pieces of at most three digits.
        var gpt2 = Tokenizers.FromHuggingFaceJson(HuggingFaceJson());
        var cl100k = Tokenizers.FromHuggingFaceJson(HuggingFaceJson(splitRegex: BpePatterns.Cl100k));
        Assert.Equal(7, gpt2.CountTokens("1234567"));
        Assert.Equal(7, cl100k.CountTokens("1234567")); // no digit merges: still one byte each
        Assert.Equal(Ids(gpt2, "hello world"), Ids(cl100k, "hello world"));
    }

    [Fact]
    public void Encode_PatternOption_OverridesThePreTokenizer()
    {
        // Splitting every character apart leaves nothing to merge.
        var perChar = Tokenizers.FromHuggingFaceJson(HuggingFaceJson(), new BpeOptions { Pattern = "." });
        Assert.Equal(new int[] { 'h', 'e', 'l', 'l', 'o' }, Ids(perChar, "hello"));
    }

    [Fact]
    public void Encode_IgnoreMerges_WholePieceInVocabularyIsOneToken()
    {
        var t = Tokenizers.FromHuggingFaceJson(HuggingFaceJson(ignoreMerges: true));
        Assert.Equal(new[] { 259, 264 }, Ids(t, "hello world"));
    }

    [Theory]
    [InlineData("The quick brown fox jumps over the lazy dog.\n\tTabs,  double  spaces   and newlines\r\n")]
    [InlineData("Ünïcödé: naïve café, Straße, 東京都, 서울, Ελληνικά, русский")]
    [InlineData("emoji 😀👍🏽 family 👨‍👩‍👧‍👦 flags 🇫🇷 keycap 1️⃣")]
    [InlineData("code: if (x != null) { return x?.Value ?? 0; } // done <|endoftext|> after")]
    [InlineData("   leading and trailing spaces   ")]
    public void Decode_OfEncode_RoundTrips(string text)
    {
        foreach (var t in new[] { HfTokenizer(), TiktokenTokenizer() })
        {
            Assert.Equal(text, t.Decode(Ids(t, text)));
        }
    }

    [Fact]
    public void Encode_ByteMissingFromVocabulary_FallsBackToAByteIdAboveTheVocabulary()
    {
        // Only the first 128 bytes have tokens: é (C3 A9) must still encode and decode exactly.
        var t = Tokenizers.FromHuggingFaceJson(HuggingFaceJson(byteCount: 128));
        Assert.Equal(128, t.FallbackByteTokens);
        int[] ids = Ids(t, "héllo");
        Assert.Equal(new[] { 'h', t.ByteTokenId(0xC3), t.ByteTokenId(0xA9), 257, 'o' }, ids);
        Assert.True(t.ByteTokenId(0xC3) > EndOfText);
        Assert.Equal("héllo", t.Decode(ids));
    }

    [Fact]
    public void Decode_UnknownId_Throws()
    {
        var t = HfTokenizer();
        Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode(new[] { 99_999 }));
    }

    [Fact]
    public void Decode_CutMultiByteCharacter_GivesReplacementCharacter()
    {
        var t = HfTokenizer();
        Assert.Equal("\uFFFD", t.Decode(new[] { 0xF0, 0x9F }));
    }

    [Fact]
    public void AddedTokenId_ReturnsIdOrMinusOne()
    {
        var t = HfTokenizer();
        Assert.Equal(EndOfText, t.AddedTokenId("<|endoftext|>"));
        Assert.Equal(-1, t.AddedTokenId("<|nope|>"));
    }

    [Fact]
    public void ByteLevelMap_MatchesGpt2Alphabet()
    {
        Assert.Equal('\u0120', ByteLevelMap.ToChar((byte)' ')); // "Ġ"
        Assert.Equal('\u010A', ByteLevelMap.ToChar((byte)'\n')); // "Ċ"
        Assert.Equal('A', ByteLevelMap.ToChar((byte)'A'));
        for (int b = 0; b < 256; b++)
        {
            Assert.Equal(b, ByteLevelMap.ToByte(ByteLevelMap.ToChar((byte)b)));
        }

        Assert.Equal(-1, ByteLevelMap.ToByte('\u4E00'));
    }

    [Fact]
    public void MergeByHeap_AgreesWithScanAndWithANaiveReference()
    {
        // A denser random vocabulary over a 3-letter alphabet, so long pieces exercise many merges and ties.
        var rng = new Random(1234);
        var tokens = new List<string> { "a", "b", "c" };
        var merges = new List<(string, string)>();
        var seen = new HashSet<string>(tokens);
        while (merges.Count < 60)
        {
            string l = tokens[rng.Next(tokens.Count)], r = tokens[rng.Next(tokens.Count)];
            if (l.Length + r.Length <= 8 && seen.Add(l + r))
            {
                merges.Add((l, r));
                tokens.Add(l + r);
            }
        }

        var t = Tokenizers.FromHuggingFaceJson(CustomJson(merges));
        for (int trial = 0; trial < 300; trial++)
        {
            int len = 1 + rng.Next(trial < 150 ? 40 : 400);
            var sb = new StringBuilder();
            for (int i = 0; i < len; i++)
            {
                sb.Append("abc"[rng.Next(3)]);
            }

            byte[] bytes = Encoding.ASCII.GetBytes(sb.ToString());
            int[] scan = t.MergeByScan(bytes);
            int[] heap = t.MergeByHeap(bytes);
            Assert.Equal(scan, heap);
            string[] naive = NaiveBpe(sb.ToString(), merges);
            Assert.Equal(naive, scan.Select(id => t.Decode(new[] { id })).ToArray());
        }
    }

    [Fact]
    public void Encode_ConcurrentCallsWithATinyCache_AllAgree()
    {
        var t = Tokenizers.FromHuggingFaceJson(HuggingFaceJson(), new BpeOptions { CacheCapacity = 4 });
        string text = string.Join(' ', Enumerable.Range(0, 200).Select(i => $"hello{i} world{i % 7} aaaa"));
        int[] expected = Ids(HfTokenizer(), text);
        Parallel.For(0, 16, _ => Assert.Equal(expected, Ids(t, text)));
    }

    [Fact]
    public void Load_UnknownExtension_Throws()
    {
        Assert.Throws<NotSupportedException>(() => Tokenizers.Load(WriteFile("vocab.txt", "x")));
    }

    [Fact]
    public void Load_MergeOfUnknownToken_ThrowsFormatException()
    {
        string json = HuggingFaceJson().Replace("\"h e\"", "\"h \u4E00\"", StringComparison.Ordinal);
        var e = Assert.Throws<FormatException>(() => Tokenizers.FromHuggingFaceJson(json));
        Assert.Contains("merge #0", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_NonBpeModel_ThrowsNotSupported()
    {
        string json = HuggingFaceJson().Replace("\"type\":\"BPE\"", "\"type\":\"WordPiece\"", StringComparison.Ordinal);
        Assert.Throws<NotSupportedException>(() => Tokenizers.FromHuggingFaceJson(json));
    }

    [Fact]
    public void Load_BadTiktokenLine_ThrowsWithLineNumber()
    {
        using var s = new MemoryStream(Encoding.UTF8.GetBytes("YQ== 0\nnot-base64! 1\n"));
        var e = Assert.Throws<FormatException>(() => Tokenizers.FromTiktoken(s));
        Assert.Contains("line 2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Name_NamesTheFile()
    {
        Assert.Equal("bpe:tokenizer.json", HfTokenizer().Name);
        Assert.Equal("bpe:tiny.tiktoken", TiktokenTokenizer().Name);
    }

    private static string CustomJson(List<(string A, string B)> merges)
    {
        var vocab = new Dictionary<string, int>();
        for (int b = 0; b < 256; b++)
        {
            vocab[ByteLevelMap.ToChar((byte)b).ToString()] = b;
        }

        foreach (var (a, b) in merges)
        {
            vocab[a + b] = vocab.Count;
        }

        var doc = new
        {
            pre_tokenizer = new { type = "ByteLevel", add_prefix_space = false, use_regex = true },
            decoder = new { type = "ByteLevel" },
            model = new { type = "BPE", vocab, merges = merges.Select(m => m.A + " " + m.B).ToArray() },
        };
        return JsonSerializer.Serialize(doc);
    }

    /// <summary>Textbook BPE on strings: apply the lowest-ranked adjacent pair, leftmost first, until none applies.</summary>
    private static string[] NaiveBpe(string word, List<(string A, string B)> merges)
    {
        var parts = word.Select(c => c.ToString()).ToList();
        while (true)
        {
            int bestRank = int.MaxValue, bestPos = -1;
            for (int i = 0; i + 1 < parts.Count; i++)
            {
                int rank = merges.IndexOf((parts[i], parts[i + 1]));
                if (rank >= 0 && rank < bestRank)
                {
                    bestRank = rank;
                    bestPos = i;
                }
            }

            if (bestPos < 0)
            {
                return parts.ToArray();
            }

            parts[bestPos] += parts[bestPos + 1];
            parts.RemoveAt(bestPos + 1);
        }
    }
}
