using BenchmarkDotNet.Attributes;
using Worker.Cpu;

namespace Gateway.Benchmarks.Cpu;

/// <summary>
/// A full decode step of <see cref="CpuBenchModels.Decode"/> (4 layers, Q8_0, 261 MB of weights per step) for a batch
/// of Batch sequences each with 256 cached tokens, on Threads threads: what one continuous-batching iteration of the
/// cpu backend costs. Each invocation decodes at the same positions (the K/V slot is overwritten), so runs are stable.
/// </summary>
[MemoryDiagnoser]
public class DecodeStepBenchmarks
{
    private const int Cached = 256, BlockSize = 16;
    private LlamaModel _model = null!;
    private LlamaRunner _runner = null!;
    private SeqChunk[] _batch = [];
    private float[] _logits = [];

    [Params(1, 8)]
    public int Batch { get; set; }

    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _model = LlamaModel.Load(CpuBenchModels.Path(CpuBenchModels.Decode, GgufTensorType.Q8_0));
        int blocksPerSeq = Cached / BlockSize + 1;
        var pool = new KvPool(_model.Config, Batch * blocksPerSeq, BlockSize);
        _runner = new LlamaRunner(_model, pool, Math.Max(Batch, Cached), Threads);
        _logits = new float[Batch * _model.Config.Vocab];
        var rng = new Random(1);
        _batch = new SeqChunk[Batch];
        for (int s = 0; s < Batch; s++)
        {
            var table = Enumerable.Range(s * blocksPerSeq, blocksPerSeq).ToArray();
            var prompt = Enumerable.Range(0, Cached).Select(_ => rng.Next(3, _model.Config.Vocab)).ToArray();
            _runner.Forward([new SeqChunk(prompt, 0, table, false)], _logits);
            _batch[s] = new SeqChunk(new[] { rng.Next(3, _model.Config.Vocab) }, Cached, table, true);
        }
    }

    [Benchmark]
    public void DecodeStep() => _runner.Forward(_batch, _logits);

    [GlobalCleanup]
    public void Cleanup()
    {
        _runner.Dispose();
        _model.Dispose();
    }
}
