using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Llm.Prompt.Tokenization;

/// <summary>
/// Loads an operator-supplied vocabulary: a Hugging Face <c>tokenizer.json</c> (model "BPE", byte-level) or a
/// tiktoken ranks file (<c>.tiktoken</c>: one <c>base64(token bytes) rank</c> per line). Errors name what is
/// wrong or unsupported (<see cref="FormatException"/> / <see cref="NotSupportedException"/>).
/// </summary>
public static class Tokenizers
{
    private const RegexOptions PatternOptions = RegexOptions.Compiled | RegexOptions.CultureInvariant;

    /// <summary>
    /// A tokenizer by name: <c>default</c> (<see cref="DefaultTokenizer"/>), <c>bytes</c> (<see cref="ByteTokenizer"/>, the
    /// CPU backend's byte-level vocabulary), <c>o200k_base</c> / <c>cl100k_base</c> (<see cref="TiktokenEncoding"/>,
    /// Microsoft.ML.Tokenizers), or a vocabulary file path loaded by <see cref="Load(string, BpeOptions?)"/>.
    /// </summary>
    public static ITokenizer Create(string nameOrPath) => nameOrPath switch
    {
        null or "" => throw new ArgumentException("a tokenizer name or path is required", nameof(nameOrPath)),
        "default" => DefaultTokenizer.Instance,
        "bytes" => ByteTokenizer.Instance,
        "o200k_base" or "cl100k_base" => TiktokenEncoding.Get(nameOrPath),
        _ => Load(nameOrPath),
    };

    /// <summary>Loads by extension: <c>.json</c> → tokenizer.json, <c>.tiktoken</c> → ranks file.</summary>
    public static BpeTokenizer Load(string path, BpeOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string name = "bpe:" + Path.GetFileName(path);
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            return FromHuggingFaceJson(File.ReadAllText(path), options, name);
        }

        if (path.EndsWith(".tiktoken", StringComparison.OrdinalIgnoreCase))
        {
            using var stream = File.OpenRead(path);
            return FromTiktoken(stream, options, name);
        }

        throw new NotSupportedException($"unknown tokenizer file type '{Path.GetExtension(path)}': expected .json (Hugging Face tokenizer.json) or .tiktoken");
    }

    /// <summary>Builds a tokenizer from the text of a Hugging Face <c>tokenizer.json</c>.</summary>
    public static BpeTokenizer FromHuggingFaceJson(string json, BpeOptions? options = null, string name = "bpe:tokenizer.json")
    {
        options ??= new BpeOptions();
        using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true });
        var root = doc.RootElement;
        if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("tokenizer.json: missing \"model\" object");
        }

        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE")
        {
            throw new NotSupportedException($"tokenizer.json: model type '{type}' is not supported (only byte-level BPE)");
        }

        foreach (string unsupported in (string[])["continuing_subword_prefix", "end_of_word_suffix"])
        {
            if (model.TryGetProperty(unsupported, out var v) && v.ValueKind == JsonValueKind.String && v.GetString()!.Length > 0)
            {
                throw new NotSupportedException($"tokenizer.json: model.{unsupported} is not supported");
            }
        }

        if (root.TryGetProperty("normalizer", out var normalizer) && normalizer.ValueKind != JsonValueKind.Null)
        {
            throw new NotSupportedException("tokenizer.json: normalizers are not supported (byte-level BPE vocabularies have none)");
        }

        if (!model.TryGetProperty("vocab", out var vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("tokenizer.json: missing model.vocab object");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id) || id < 0)
            {
                throw new FormatException($"tokenizer.json: vocab entry '{p.Name}' has no non-negative integer id");
            }

            vocab[p.Name] = id;
        }

        var merges = new Dictionary<ulong, ulong>();
        if (model.TryGetProperty("merges", out var mergesEl) && mergesEl.ValueKind == JsonValueKind.Array)
        {
            int rank = 0;
            foreach (var m in mergesEl.EnumerateArray())
            {
                string a, b;
                if (m.ValueKind == JsonValueKind.String)
                {
                    string s = m.GetString()!;
                    int space = s.IndexOf(' ', StringComparison.Ordinal);
                    if (space <= 0 || space == s.Length - 1 || s.IndexOf(' ', space + 1) >= 0)
                    {
                        throw new FormatException($"tokenizer.json: merge #{rank} \"{s}\" is not \"a b\"");
                    }

                    a = s[..space];
                    b = s[(space + 1)..];
                }
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2)
                {
                    a = m[0].GetString() ?? throw new FormatException($"tokenizer.json: merge #{rank} has a null part");
                    b = m[1].GetString() ?? throw new FormatException($"tokenizer.json: merge #{rank} has a null part");
                }
                else
                {
                    throw new FormatException($"tokenizer.json: merge #{rank} is neither \"a b\" nor [a, b]");
                }

                if (!vocab.TryGetValue(a, out int ia) || !vocab.TryGetValue(b, out int ib))
                {
                    throw new FormatException($"tokenizer.json: merge #{rank} uses a token that is not in the vocabulary");
                }

                if (!vocab.TryGetValue(a + b, out int merged))
                {
                    throw new FormatException($"tokenizer.json: merge #{rank} produces a token that is not in the vocabulary");
                }

                merges.TryAdd(BpeTokenizer.PairKey(ia, ib), BpeTokenizer.MergeValue(rank, merged));
                rank++;
            }
        }
        else
        {
            throw new FormatException("tokenizer.json: missing model.merges array");
        }

        bool ignoreMerges = model.TryGetProperty("ignore_merges", out var im) && im.ValueKind == JsonValueKind.True;

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        if (root.TryGetProperty("added_tokens", out var addedEl) && addedEl.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in addedEl.EnumerateArray())
            {
                if (!a.TryGetProperty("content", out var c) || c.ValueKind != JsonValueKind.String || c.GetString()!.Length == 0 ||
                    !a.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id) || id < 0)
                {
                    throw new FormatException("tokenizer.json: an added_tokens entry lacks content or id");
                }

                added[c.GetString()!] = id;
            }
        }

        AddSpecial(added, options);

        bool byteLevel = false;
        bool addPrefixSpace = false;
        var patterns = new List<string>();
        if (root.TryGetProperty("pre_tokenizer", out var pre) && pre.ValueKind == JsonValueKind.Object)
        {
            ReadPreTokenizer(pre, patterns, ref byteLevel, ref addPrefixSpace);
        }

        if (root.TryGetProperty("decoder", out var dec) && dec.ValueKind == JsonValueKind.Object && ContainsType(dec, "ByteLevel"))
        {
            byteLevel = true;
        }

        if (!byteLevel)
        {
            throw new NotSupportedException("tokenizer.json: only byte-level BPE (a ByteLevel pre-tokenizer or decoder) is supported");
        }

        Regex[] levels = options.Pattern is not null ? [Compile(options.Pattern)] : patterns.ConvertAll(Compile).ToArray();
        return new BpeTokenizer(name, vocab, merges, added, levels, ignoreMerges, addPrefixSpace, options.CacheCapacity);
    }

    /// <summary>Builds a tokenizer from a tiktoken ranks file: lines <c>base64 rank</c>; the rank is the id.</summary>
    public static BpeTokenizer FromTiktoken(Stream ranks, BpeOptions? options = null, string name = "bpe:ranks.tiktoken")
    {
        options ??= new BpeOptions();
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        using (var reader = new StreamReader(ranks, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true))
        {
            int lineNo = 0;
            string? line;
            while ((line = reader.ReadLine()) is not null)
            {
                lineNo++;
                if (line.Length == 0)
                {
                    continue;
                }

                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0 || !int.TryParse(line.AsSpan(space + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int rank))
                {
                    throw new FormatException($".tiktoken line {lineNo}: expected \"base64 rank\"");
                }

                byte[] bytes;
                try
                {
                    bytes = Convert.FromBase64String(line[..space]);
                }
                catch (FormatException)
                {
                    throw new FormatException($".tiktoken line {lineNo}: token is not valid base64");
                }

                if (bytes.Length == 0 || !vocab.TryAdd(ByteLevelMap.Encode(bytes), rank))
                {
                    throw new FormatException($".tiktoken line {lineNo}: empty or duplicate token");
                }
            }
        }

        // tiktoken has no merge list: a pair merges when its concatenation is a token, at that token's rank.
        var lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        var merges = new Dictionary<ulong, ulong>();
        foreach (var kv in vocab)
        {
            ReadOnlySpan<char> s = kv.Key;
            for (int k = 1; k < s.Length; k++)
            {
                if (lookup.TryGetValue(s[..k], out int left) && lookup.TryGetValue(s[k..], out int right))
                {
                    merges.TryAdd(BpeTokenizer.PairKey(left, right), BpeTokenizer.MergeValue(kv.Value, kv.Value));
                }
            }
        }

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        AddSpecial(added, options);
        Regex[] levels = [Compile(options.Pattern ?? BpePatterns.Cl100k)];
        return new BpeTokenizer(name, vocab, merges, added, levels, wholePieceFirst: true, addPrefixSpace: false, options.CacheCapacity);
    }

    private static void AddSpecial(Dictionary<string, int> added, BpeOptions options)
    {
        if (options.SpecialTokens is null)
        {
            return;
        }

        foreach (var kv in options.SpecialTokens)
        {
            if (string.IsNullOrEmpty(kv.Key) || kv.Value < 0)
            {
                throw new ArgumentException("special tokens need non-empty content and a non-negative id", nameof(options));
            }

            added[kv.Key] = kv.Value;
        }
    }

    private static void ReadPreTokenizer(JsonElement pre, List<string> patterns, ref bool byteLevel, ref bool addPrefixSpace)
    {
        string type = pre.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
        switch (type)
        {
            case "Sequence":
                if (pre.TryGetProperty("pretokenizers", out var list) && list.ValueKind == JsonValueKind.Array)
                {
                    foreach (var p in list.EnumerateArray())
                    {
                        ReadPreTokenizer(p, patterns, ref byteLevel, ref addPrefixSpace);
                    }
                }

                break;
            case "ByteLevel":
                byteLevel = true;
                // tokenizers' defaults: add_prefix_space = true, use_regex = true.
                addPrefixSpace = !pre.TryGetProperty("add_prefix_space", out var aps) || aps.ValueKind != JsonValueKind.False;
                if (!pre.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False)
                {
                    patterns.Add(BpePatterns.Gpt2);
                }

                break;
            case "Split":
            {
                string behavior = pre.TryGetProperty("behavior", out var b) ? b.GetString() ?? "" : "";
                bool invert = pre.TryGetProperty("invert", out var inv) && inv.ValueKind == JsonValueKind.True;
                if (behavior != "Isolated" || invert)
                {
                    throw new NotSupportedException($"tokenizer.json: Split behavior '{behavior}' (invert={invert}) is not supported (only Isolated)");
                }

                if (!pre.TryGetProperty("pattern", out var pat) || pat.ValueKind != JsonValueKind.Object)
                {
                    throw new FormatException("tokenizer.json: Split without a pattern");
                }

                if (pat.TryGetProperty("Regex", out var rx) && rx.ValueKind == JsonValueKind.String)
                {
                    patterns.Add(rx.GetString()!);
                }
                else if (pat.TryGetProperty("String", out var str) && str.ValueKind == JsonValueKind.String)
                {
                    patterns.Add(Regex.Escape(str.GetString()!));
                }
                else
                {
                    throw new FormatException("tokenizer.json: Split pattern is neither Regex nor String");
                }

                break;
            }

            case "Digits":
                patterns.Add(pre.TryGetProperty("individual_digits", out var ind) && ind.ValueKind == JsonValueKind.True ? @"\p{N}" : @"\p{N}+");
                break;
            default:
                throw new NotSupportedException($"tokenizer.json: pre-tokenizer '{type}' is not supported");
        }
    }

    private static bool ContainsType(JsonElement el, string type)
    {
        if (el.TryGetProperty("type", out var t) && t.GetString() == type)
        {
            return true;
        }

        foreach (string listName in (string[])["decoders", "pretokenizers"])
        {
            if (el.TryGetProperty(listName, out var list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (var child in list.EnumerateArray())
                {
                    if (ContainsType(child, type))
                    {
                        return true;
                    }
                }
            }
        }

        return false;
    }

    private static Regex Compile(string pattern)
    {
        try
        {
            return new Regex(pattern, PatternOptions);
        }
        catch (ArgumentException e)
        {
            throw new NotSupportedException($"pre-tokenizer pattern is not valid .NET regex syntax (possessive quantifiers are not supported): {e.Message}", e);
        }
    }
}
