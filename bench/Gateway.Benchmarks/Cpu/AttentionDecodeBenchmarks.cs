using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Worker.Cpu;

namespace Gateway.Benchmarks.Cpu;

/// <summary>
/// The paged-attention decode kernel for one layer: 8 sequences x 8 K/V heads (32 query heads, head dim 64), each
/// attending over Context cached positions through a shuffled block table of 16-token blocks, single thread.
/// K+V bytes read per call: 8 x Context x 2 x 512 x 4.
/// </summary>
[MemoryDiagnoser]
public unsafe class AttentionDecodeBenchmarks
{
    private const int Sequences = 8, BlockSize = 16;
    private KvPool _pool = null!;
    private int[][] _tables = [];
    private float* _q, _o, _scratch;
    private LlamaConfig _c = null!;

    [Params(512, 2048)]
    public int Context { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _c = new LlamaConfig(32000, 2048, 1, 32, 8, 64, 5632, 4096, 10000f, 1e-5f, 1, 2);
        int blocksPerSeq = Context / BlockSize + 1;
        _pool = new KvPool(_c, Sequences * blocksPerSeq, BlockSize);
        var rng = new Random(1);
        var order = Enumerable.Range(0, Sequences * blocksPerSeq).OrderBy(_ => rng.Next()).ToArray();
        _tables = Enumerable.Range(0, Sequences).Select(s => order.Skip(s * blocksPerSeq).Take(blocksPerSeq).ToArray()).ToArray();
        for (int b = 0; b < _pool.NumBlocks; b++)
            for (int g = 0; g < _c.KvHeads; g++)
                for (int i = 0; i < BlockSize * _c.HeadDim; i++)
                {
                    _pool.K(0, b, g)[i] = (float)(rng.NextDouble() * 2 - 1);
                    _pool.V(0, b, g)[i] = (float)(rng.NextDouble() * 2 - 1);
                }
        _q = (float*)NativeMemory.AlignedAlloc((nuint)(Sequences * _c.Dim * 4), 64);
        _o = (float*)NativeMemory.AlignedAlloc((nuint)(Sequences * _c.Dim * 4), 64);
        _scratch = (float*)NativeMemory.AlignedAlloc((nuint)(PagedAttention.ScratchFloats(1, 4, 64, BlockSize) * 4), 64);
        for (int i = 0; i < Sequences * _c.Dim; i++) _q[i] = (float)(rng.NextDouble() * 2 - 1);
    }

    [Benchmark]
    public void Decode8Sequences()
    {
        for (int s = 0; s < Sequences; s++)
            for (int g = 0; g < _c.KvHeads; g++)
                PagedAttention.Attend(_pool, 0, g, _tables[s], Context - 1, 1, _q + s * _c.Dim, _o + s * _c.Dim, _c.Dim, _scratch);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_q); NativeMemory.AlignedFree(_o); NativeMemory.AlignedFree(_scratch);
    }
}
