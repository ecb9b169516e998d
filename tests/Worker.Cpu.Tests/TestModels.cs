using System.Collections.Concurrent;

namespace Worker.Cpu.Tests;

/// <summary>Tiny seeded random GGUF models written once per (shape, type) into a temp folder.</summary>
internal static class TestModels
{
    public static readonly LlamaShape Tiny = new(Vocab: 300, Dim: 64, Layers: 2, Heads: 4, KvHeads: 2, Hidden: 128, MaxContext: 256);
    public static readonly LlamaShape TinyUntied = Tiny with { TiedOutput = false, Vocab = 280 };

    private static readonly ConcurrentDictionary<(LlamaShape, GgufTensorType, int), Lazy<string>> Files = new();
    private static readonly string Dir = Directory.CreateTempSubdirectory("worker-cpu-tests-").FullName;

    public static string Path(LlamaShape shape, GgufTensorType type = GgufTensorType.F32, int seed = 7) =>
        Files.GetOrAdd((shape, type, seed), key => new Lazy<string>(() =>
        {
            var p = System.IO.Path.Combine(Dir, $"m{Files.Count}-{key.Item2}-{key.Item3}-{Guid.NewGuid():N}.gguf");
            RandomLlamaGguf.Write(p, key.Item1, key.Item3, key.Item2);
            return p;
        })).Value;

    public static LlamaModel Load(LlamaShape shape, GgufTensorType type = GgufTensorType.F32, int seed = 7) => LlamaModel.Load(Path(shape, type, seed));

    /// <summary>A deterministic prompt of byte and filler tokens.</summary>
    public static int[] Prompt(int length, int seed, int vocab)
    {
        var rng = new Random(seed);
        var p = new int[length];
        p[0] = 1;
        for (int i = 1; i < length; i++) p[i] = rng.Next(3, vocab);
        return p;
    }

    /// <summary>max |a - b| / max |b|: the relative logit error used by every agreement test.</summary>
    public static float RelativeError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            maxDiff = MathF.Max(maxDiff, MathF.Abs(a[i] - b[i]));
            maxRef = MathF.Max(maxRef, MathF.Abs(b[i]));
        }
        return maxDiff / maxRef;
    }

    public static int ArgMax(ReadOnlySpan<float> x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
