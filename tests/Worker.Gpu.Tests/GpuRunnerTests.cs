using Worker.Cpu;

namespace Worker.Gpu.Tests;

/// <summary>
/// The GPU backend's kernels, run by ILGPU's CPU accelerator (CI has no GPU), against the CPU backend on the same tiny
/// GGUF, prompt, chunking and shuffled block tables: every step's logits within 1e-3 relative (max|Δ| / max|logit|) for
/// F32 and F16 weights, 3e-2 for Q8_0 (the CPU backend quantizes activations to int8, the GPU kernels keep them f32).
/// </summary>
public sealed class GpuRunnerTests : IDisposable
{
    private static readonly LlamaShape Tiny = new(Vocab: 300, Dim: 64, Layers: 2, Heads: 4, KvHeads: 2, Hidden: 128, MaxContext: 128);
    private const int BlockSize = 4, Blocks = 24;
    private readonly string _dir = Directory.CreateTempSubdirectory("worker-gpu-tests-").FullName;
    private readonly GpuDevice _device = GpuDevice.OpenCpu();

    private LlamaModel Model(GgufTensorType type)
    {
        var path = Path.Combine(_dir, $"tiny-{type}.gguf");
        if (!File.Exists(path)) RandomLlamaGguf.Write(path, Tiny, 11, type);
        return LlamaModel.Load(path);
    }

    private static int[] Prompt(int n, int seed)
    {
        var rng = new Random(seed);
        return [1, .. Enumerable.Range(1, n - 1).Select(_ => rng.Next(3, Tiny.Vocab))];
    }

    /// <summary>Block ids in a scrambled order, so tables are never the identity; even and odd <paramref name="which"/> never share a block.</summary>
    private static int[] Table(int which) => Enumerable.Range(0, Blocks / 2).Select(b => (b * 2 + which) * 7 % Blocks).ToArray();

    private static float RelativeError(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float maxDiff = 0, maxRef = 0;
        for (int i = 0; i < a.Length; i++)
        {
            maxDiff = MathF.Max(maxDiff, MathF.Abs(a[i] - b[i]));
            maxRef = MathF.Max(maxRef, MathF.Abs(b[i]));
        }
        return maxDiff / maxRef;
    }

    [Theory]
    [InlineData(GgufTensorType.F32, 1e-3)]
    [InlineData(GgufTensorType.F16, 1e-3)]
    [InlineData(GgufTensorType.Q8_0, 3e-2)]
    public void ChunkedPrefillThenDecode_MatchesTheCpuBackendAtEveryStep(GgufTensorType type, double tolerance)
    {
        using var model = Model(type);
        using var cpu = new LlamaRunner(model, new KvPool(model.Config, Blocks, BlockSize), 16, 1);
        using var gpu = new GpuRunner(_device.Accelerator, model, Blocks, BlockSize, 16);
        var tokens = Prompt(13, 3).ToList();
        var table = Table(5);
        var a = new float[Tiny.Vocab];
        var b = new float[Tiny.Vocab];
        int done = 0;
        foreach (int n in new[] { 7, 6 })
        {
            var chunk = new SeqChunk(tokens.GetRange(done, n).ToArray(), done, table, true);
            cpu.Forward([chunk], a);
            gpu.Forward([chunk], b);
            Assert.True(RelativeError(b, a) <= tolerance, $"prefill chunk at {done}: {RelativeError(b, a)}");
            done += n;
        }
        for (int step = 0; step < 5; step++)
        {
            tokens.Add(Sampler.Argmax(a));
            var chunk = new SeqChunk(new[] { tokens[^1] }, done++, table, true);
            cpu.Forward([chunk], a);
            gpu.Forward([chunk], b);
            Assert.True(RelativeError(b, a) <= tolerance, $"decode step {step}: {RelativeError(b, a)}");
        }
    }

    [Fact]
    public void MixedBatchOfTwoSequences_MatchesTheCpuBackendRowByRow()
    {
        using var model = Model(GgufTensorType.F32);
        using var cpu = new LlamaRunner(model, new KvPool(model.Config, Blocks, BlockSize), 16, 1);
        using var gpu = new GpuRunner(_device.Accelerator, model, Blocks, BlockSize, 16);
        int[] t0 = Table(0), t1 = Table(1);
        Assert.Empty(t0.Intersect(t1));
        var p0 = Prompt(9, 1);
        var p1 = Prompt(5, 2);
        var a = new float[2 * Tiny.Vocab];
        var b = new float[2 * Tiny.Vocab];
        // Step 1: sequence 0's prefill alone; step 2: its decode token batched with sequence 1's whole prefill.
        SeqChunk[] first = [new(p0, 0, t0, true)];
        cpu.Forward(first, a);
        gpu.Forward(first, b);
        SeqChunk[] second = [new(new[] { Sampler.Argmax(a.AsSpan(0, Tiny.Vocab)) }, 9, t0, true), new(p1, 0, t1, true)];
        cpu.Forward(second, a);
        gpu.Forward(second, b);
        for (int row = 0; row < 2; row++)
            Assert.True(RelativeError(b.AsSpan(row * Tiny.Vocab, Tiny.Vocab), a.AsSpan(row * Tiny.Vocab, Tiny.Vocab)) <= 1e-3, $"row {row}");
    }

    [Fact]
    public void DeviceSampling_IsArgmaxWhenGreedy_AndTheHostSamplersDrawWithTemperature()
    {
        using var model = Model(GgufTensorType.F32);
        using var gpu = new GpuRunner(_device.Accelerator, model, Blocks, BlockSize, 16);
        var logits = new float[2 * Tiny.Vocab];
        gpu.Forward([new(Prompt(6, 4), 0, Table(0), true), new(Prompt(3, 5), 0, Table(1), true)], logits);
        var tokens = new int[2];
        foreach (var (temperature, seed) in new[] { (0f, 0UL), (0.8f, 42UL), (1.5f, 7UL), (1.5f, 8UL) })
        {
            gpu.Sample([temperature, temperature], [seed, seed + 1], [5, 2], tokens);
            for (int row = 0; row < 2; row++)
            {
                var copy = logits.AsSpan(row * Tiny.Vocab, Tiny.Vocab).ToArray();
                int expected = temperature <= 0 ? Sampler.Argmax(copy) : Sampler.Sample(copy, temperature, seed + (ulong)row, row == 0 ? 5 : 2);
                Assert.Equal(expected, tokens[row]);
            }
        }
        Assert.Throws<ArgumentException>(() => gpu.Sample([0f], [0UL], [0], tokens));
    }

    [Fact]
    public void BadBatches_FailWithTheCpuBackendsMessages()
    {
        using var model = Model(GgufTensorType.F32);
        using var gpu = new GpuRunner(_device.Accelerator, model, Blocks, BlockSize, 16);
        var logits = new float[Tiny.Vocab];
        Assert.Contains("outside the vocabulary", Assert.Throws<ArgumentException>(() => gpu.Forward([new(new[] { 1, 999 }, 0, Table(0), true)], logits)).Message);
        Assert.Contains("outside the pool", Assert.Throws<ArgumentException>(() => gpu.Forward([new(new[] { 1 }, 0, new[] { Blocks }, true)], logits)).Message);
        Assert.Contains("more than 16 tokens", Assert.Throws<ArgumentException>(() => gpu.Forward([new(Prompt(17, 1), 0, Table(0), true)], logits)).Message);
    }

    [Fact]
    public void OpenCuda_WithoutACudaDevice_RefusesWithAClearMessage()
    {
        GpuDevice? device = null;
        try
        {
            device = GpuDevice.OpenCuda();
            Assert.False(string.IsNullOrEmpty(device.Name)); // a CUDA machine: the device opened
        }
        catch (NotSupportedException e)
        {
            Assert.Contains("gpu backend", e.Message);
            Assert.Contains("CUDA", e.Message);
        }
        finally
        {
            device?.Dispose();
        }
    }

    public void Dispose()
    {
        _device.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
