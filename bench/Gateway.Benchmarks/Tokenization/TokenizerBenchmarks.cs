using System.Text;
using BenchmarkDotNet.Attributes;
using Llm.Prompt.Tokenization;

namespace Gateway.Benchmarks.Tokenization;

/// <summary>
/// Encoding cost per 100,000 tokens: for each tokenizer the setup cuts a seeded mixed text (English prose with
/// numbers, JSON, code, a little CJK) so that it encodes to exactly <see cref="Tokens"/> tokens under that
/// tokenizer, then each operation encodes it once. <c>ml-*</c>: Microsoft.ML.Tokenizers' <c>TiktokenTokenizer</c>
/// (the <c>o200k_base</c> / <c>cl100k_base</c> tokenizer options); <c>bpe-cl100k</c>: our byte-level BPE loader
/// (<c>Tokenizers.FromTiktoken</c>, the path a <c>tokenizer.json</c> / <c>.tiktoken</c> file takes) over the same
/// cl100k ranks, so the two implementations meet on one vocabulary; <c>default</c>: the default tokenizer.
/// Both BPEs cache pieces; after the warm-up their caches hold the text's repeated words.
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    /// <summary>Tokens each operation encodes.</summary>
    public const int Tokens = 100_000;

    private readonly List<int> _ids = new(Tokens + 64);
    private ITokenizer _tokenizer = null!;
    private string _text = "";

    /// <summary>The tokenizer measured.</summary>
    [Params("ml-o200k", "ml-cl100k", "bpe-cl100k", "default")]
    public string Tokenizer { get; set; } = "";

    [GlobalSetup]
    public void Setup()
    {
        _tokenizer = Tokenizer switch
        {
            "ml-o200k" => Tokenizers.Create("o200k_base"),
            "ml-cl100k" => Tokenizers.Create("cl100k_base"),
            "bpe-cl100k" => Tokenizers.FromTiktoken(TiktokenEncoding.OpenRanks("cl100k_base"), name: "bpe:cl100k_base"),
            _ => Tokenizers.Create("default"),
        };
        _text = CutToTokens(_tokenizer, MixedText(Tokens * 8), Tokens);
        _ids.Clear();
        _tokenizer.Encode(_text, _ids);
        if (Math.Abs(_ids.Count - Tokens) > 64)
        {
            throw new InvalidOperationException($"{Tokenizer}: text encodes to {_ids.Count} tokens, not {Tokens}");
        }
    }

    /// <summary>Encodes the 100k-token text.</summary>
    [Benchmark]
    public int Encode100kTokens()
    {
        _ids.Clear();
        _tokenizer.Encode(_text, _ids);
        return _ids.Count;
    }

    /// <summary>A seeded mix of about <paramref name="chars"/> characters.</summary>
    public static string MixedText(int chars)
    {
        string[] words =
        [
            "the", "gateway", "routes", "each", "request", "to", "a", "worker", "whose", "cache", "already", "holds", "its",
            "prefix", "tokens", "blocks", "are", "hashed", "with", "salt", "of", "tenant", "scheduler", "fairness", "queue",
            "latency", "throughput", "model", "prompt", "completion", "stream", "session", "agent", "tool", "result", "and",
            "is", "in", "on", "for", "from", "that", "this", "when", "every", "international", "configuration", "observability",
        ];
        var rng = new Random(20251207);
        var sb = new StringBuilder(chars + 256);
        while (sb.Length < chars)
        {
            switch (rng.Next(10))
            {
                case < 6:
                    int n = 6 + rng.Next(14);
                    for (int i = 0; i < n; i++)
                    {
                        string w = words[rng.Next(words.Length)];
                        sb.Append(i == 0 ? char.ToUpperInvariant(w[0]) + w[1..] : w).Append(i == n - 1 ? ". " : rng.Next(8) == 0 ? ", " : " ");
                    }

                    break;
                case 6:
                    sb.Append("In ").Append(1990 + rng.Next(40)).Append(", ").Append(rng.Next(100_000)).Append(" requests took ")
                        .Append((rng.NextDouble() * 100).ToString("F2", System.Globalization.CultureInfo.InvariantCulture)).Append(" ms. ");
                    break;
                case 7:
                    sb.Append("{\"id\":\"req-").Append(rng.Next(1_000_000)).Append("\",\"model\":\"llama3-8b\",\"cached\":").Append(rng.Next(4096)).Append("}\n");
                    break;
                case 8:
                    sb.Append("def step_").Append(rng.Next(100)).Append("(batch, kv):\n    return [t + ").Append(rng.Next(10)).Append(" for t in batch if t in kv]\n");
                    break;
                default:
                    sb.Append("日本語のテキストと한국어 텍스트. ");
                    break;
            }
        }

        return sb.ToString();
    }

    /// <summary>The longest prefix of <paramref name="text"/>, cut at a space, that encodes to at most <paramref name="tokens"/> tokens.</summary>
    public static string CutToTokens(ITokenizer tokenizer, string text, int tokens)
    {
        int lo = 0, hi = text.Length;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) / 2;
            if (tokenizer.CountTokens(text.AsSpan(0, mid)) <= tokens) lo = mid;
            else hi = mid - 1;
        }

        int cut = text.LastIndexOf(' ', Math.Max(0, lo - 1));
        return text[..(cut > 0 ? cut : lo)];
    }
}
