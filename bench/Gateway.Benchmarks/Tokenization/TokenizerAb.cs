using System.Diagnostics;
using System.Globalization;

namespace Gateway.Benchmarks.Tokenization;

/// <summary>
/// <c>tokenizers-ab [rounds]</c>: the same four encodes as <see cref="TokenizerBenchmarks"/>, interleaved round by round
/// (order rotated each round) so that a machine whose load drifts slows every tokenizer alike; prints each one's median
/// and its ratio to <c>ml-cl100k</c> as a Markdown table. A complement to BenchmarkDotNet's sequential runs on a busy
/// machine, not a replacement.
/// </summary>
public static class TokenizerAb
{
    public static int Run(string[] args)
    {
        int rounds = args.Length > 1 && int.TryParse(args[1], out int r) && r > 0 ? r : 41;
        string[] names = ["ml-o200k", "ml-cl100k", "bpe-cl100k", "default"];
        var benches = names.Select(n =>
        {
            var b = new TokenizerBenchmarks { Tokenizer = n };
            b.Setup();
            return b;
        }).ToArray();
        for (int w = 0; w < 5; w++)
        {
            foreach (var b in benches) b.Encode100kTokens();
        }

        var times = names.Select(_ => new List<double>(rounds)).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            for (int k = 0; k < benches.Length; k++)
            {
                int i = (k + round) % benches.Length;
                long t0 = Stopwatch.GetTimestamp();
                benches[i].Encode100kTokens();
                times[i].Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }
        }

        double Median(List<double> v)
        {
            var s = v.Order().ToList();
            return s[s.Count / 2];
        }

        double reference = Median(times[1]);
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine($"| tokenizer | median ms per 100k tokens ({rounds} interleaved rounds) | × ml-cl100k |");
        Console.WriteLine("|---|---:|---:|");
        for (int i = 0; i < names.Length; i++)
        {
            double m = Median(times[i]);
            Console.WriteLine(string.Create(inv, $"| {names[i]} | {m:F2} | {m / reference:F2} |"));
        }

        return 0;
    }
}
