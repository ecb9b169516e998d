using BenchmarkDotNet.Attributes;
using Llm.Prompt.Hashing;

namespace Gateway.Benchmarks;

/// <summary>Chained block hashing of a 100k-token prompt (what the gateway and the worker do per request).</summary>
[MemoryDiagnoser]
public class HashingBenchmarks
{
    private const int Tokens = 100_000;
    private int[] _tokens = [];
    private ulong[] _hashes = [];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        _tokens = new int[Tokens];
        for (int i = 0; i < Tokens; i++)
        {
            _tokens[i] = rng.Next(0, 128_256);
        }

        _hashes = new ulong[Tokens / BlockHasher.DefaultBlockSize];
    }

    /// <summary>Into a caller-owned buffer: allocation-free.</summary>
    [Benchmark(Baseline = true)]
    public int ComputeChain_100kTokens_IntoSpan() =>
        BlockHasher.ComputeChain(_tokens, 0x1234UL, BlockHasher.DefaultBlockSize, _hashes);

    /// <summary>The convenience overload (allocates the 6,250-entry result array).</summary>
    [Benchmark]
    public ulong[] ComputeChain_100kTokens_Allocating() =>
        BlockHasher.ComputeChain(_tokens, 0x1234UL);
}
