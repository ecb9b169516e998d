using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Worker.Cpu;

namespace Gateway.Benchmarks.Cpu;

/// <summary>
/// One 5632 x 2048 weight matrix (a Llama FFN up projection) times 1 token (decode matvec) or 16 tokens (a prefill
/// tile), single thread, per weight type and kernel level. Weight bytes per call: F32 46 MB, F16 23 MB, Q8_0 12.3 MB.
/// </summary>
[MemoryDiagnoser]
public unsafe class MatVecBenchmarks
{
    private LlamaModel _model = null!;
    private float* _x, _y, _scratch, _xd;
    private sbyte* _xn;
    private sbyte* _xq;

    [Params(GgufTensorType.F32, GgufTensorType.F16, GgufTensorType.Q8_0)]
    public GgufTensorType Type { get; set; }

    [Params(1, 16)]
    public int Tokens { get; set; }

    [Params(CpuIsa.Portable, CpuIsa.Avx2, CpuIsa.Avx512)]
    public CpuIsa Isa { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var shape = CpuBenchModels.Decode with { Layers = 1, Vocab = 260 };
        _model = LlamaModel.Load(CpuBenchModels.Path(shape, Type));
        var w = _model.Layers[0].Up;
        _x = (float*)NativeMemory.AlignedAlloc((nuint)(16 * w.Cols * 4), 64);
        _y = (float*)NativeMemory.AlignedAlloc((nuint)(16 * w.Rows * 4), 64);
        _scratch = (float*)NativeMemory.AlignedAlloc((nuint)(w.Cols * 4), 64);
        _xq = (sbyte*)NativeMemory.AlignedAlloc((nuint)(16 * w.Cols), 64);
        _xd = (float*)NativeMemory.AlignedAlloc((nuint)(16 * w.Cols / 32 * 4), 64);
        _xn = (sbyte*)NativeMemory.AlignedAlloc((nuint)(16 * w.Cols), 64);
        var rng = new Random(1);
        for (int i = 0; i < 16 * w.Cols; i++) _x[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int t = 0; t < 16; t++) Q8.QuantizeRow(_x + t * w.Cols, w.Cols, _xq + t * w.Cols, _xd + t * w.Cols / 32, _xn + t * w.Cols);
    }

    [Benchmark]
    public void UpProjection()
    {
        if (!CpuIsas.IsSupported(Isa)) throw new NotSupportedException(Isa.ToString());
        var w = _model.Layers[0].Up;
        MatMul.Rows(w, 0, w.Rows, _x, _xq, _xn, _xd, Tokens, _y, w.Rows, Isa, _scratch);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _model.Dispose();
        NativeMemory.AlignedFree(_x); NativeMemory.AlignedFree(_y); NativeMemory.AlignedFree(_scratch);
        NativeMemory.AlignedFree(_xq); NativeMemory.AlignedFree(_xd); NativeMemory.AlignedFree(_xn);
    }
}
