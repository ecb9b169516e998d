using System.Text;
using BenchmarkDotNet.Attributes;
using Llm.Prompt.Hashing;
using Llm.Prompt.OpenAi;
using Llm.Prompt.Tokenization;

namespace Gateway.Benchmarks;

/// <summary>
/// The Gateway.Core share of one request in the gateway's path (ProxyHandler): parse + validate the body
/// (OpenAiRequestParser, which renders the chat prompt with PromptRenderer), tokenize the prompt with the default
/// tokenizer, chain-hash its blocks. Two bodies: the overhead benchmark's tiny chat request
/// (bench/PlainYarp/post.lua) and a 2k-token system prompt + question.
/// </summary>
[MemoryDiagnoser]
public class RequestPathBenchmarks
{
    private readonly List<int> _tokens = new(4096);
    private ReadOnlyMemory<byte> _small;
    private ReadOnlyMemory<byte> _large;

    [GlobalSetup]
    public void Setup()
    {
        _small = Encoding.UTF8.GetBytes("""{"model":"llama3-8b","max_tokens":1,"messages":[{"role":"user","content":"Say hi in one word."}]}""");
        var rng = new Random(42);
        var words = new StringBuilder();
        for (int i = 0; i < 2000; i++)
        {
            words.Append(' ').Append((char)('a' + rng.Next(26))).Append((char)('a' + rng.Next(26))).Append((char)('a' + rng.Next(26)));
        }

        string body = $$"""{"model":"llama3-8b","max_tokens":32,"stream":true,"messages":[{"role":"system","content":"{{words}}"},{"role":"user","content":"What next?"}]}""";
        _large = Encoding.UTF8.GetBytes(body);
    }

    /// <summary>Tiny chat body: parse + render only.</summary>
    [Benchmark(Baseline = true)]
    public OpenAiRequest? ParseSmall() => Parse(_small);

    /// <summary>Tiny chat body: parse, tokenize, hash (what ProxyHandler does before routing).</summary>
    [Benchmark]
    public int ParseTokenizeHashSmall() => ParseTokenizeHash(_small);

    /// <summary>~2k-token chat body: parse, tokenize, hash.</summary>
    [Benchmark]
    public int ParseTokenizeHashLarge() => ParseTokenizeHash(_large);

    private static OpenAiRequest? Parse(ReadOnlyMemory<byte> body) =>
        OpenAiRequestParser.TryParse(body, OpenAiEndpoint.ChatCompletions, out var request, out _) ? request : null;

    private int ParseTokenizeHash(ReadOnlyMemory<byte> body)
    {
        var request = Parse(body)!;
        _tokens.Clear();
        DefaultTokenizer.Instance.Encode(request.PromptText, _tokens);
        var hashes = BlockHasher.ComputeChain(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_tokens), 0x1234UL, BlockHasher.DefaultBlockSize);
        return hashes.Length + _tokens.Count;
    }
}
