using ILGPU;
using ILGPU.Runtime;
using Worker.Cpu;

namespace Worker.Gpu;

/// <summary>
/// <see cref="LlamaRunner"/>'s forward pass on an ILGPU accelerator (CUDA in production, the CPU accelerator in tests):
/// weights uploaded once at construction in their GGUF type, a K/V pool per layer on the device with the CPU pool's
/// layout ([block][kvHead][slot][headDim] f32, addressed by the engine's block ids), and per step only token ids,
/// positions and block tables go up and the logits rows come back. Same contract as <see cref="LlamaRunner.Forward"/>
/// (validation included); device buffers are sized at construction for maxBatchTokens, so a step allocates only when
/// the batch's block tables outgrow the table buffer. Not thread-safe.
/// </summary>
public sealed class GpuRunner : IForwardRunner, IDeviceSampler
{
    private readonly Accelerator _acc;
    private readonly LlamaConfig _c;
    private readonly List<IDisposable> _owned = [];
    private readonly GpuMatrix _embedding, _output;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _outputNorm;
    private readonly GpuLayer[] _layers;
    private readonly MemoryBuffer1D<float, Stride1D.Dense>[] _kPool, _vPool;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _rope, _x, _xn, _q, _k, _v, _att, _tmp, _gate, _up, _logits;
    private readonly MemoryBuffer1D<int, Stride1D.Dense> _tokens, _positions, _tableStarts, _identity, _logitRows, _sampled, _samplePositions;
    private readonly MemoryBuffer1D<float, Stride1D.Dense> _temperatures;
    private readonly MemoryBuffer1D<ulong, Stride1D.Dense> _seeds;
    private MemoryBuffer1D<int, Stride1D.Dense> _tables;
    private readonly int[] _hTokens, _hPositions, _hTableStarts, _hLogitRows;
    private int[] _hTables = new int[256];
    private int _lastLogitRows;

    private readonly Action<Index1D, ArrayView<float>, ArrayView<ushort>, ArrayView<sbyte>, ArrayView<float>, int, int, ArrayView<int>, ArrayView<float>> _embed;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<ushort>, ArrayView<sbyte>, ArrayView<float>, int, int, int, ArrayView<float>, ArrayView<float>, int> _matVec;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, float> _rmsNorm;
    private readonly Action<Index1D, ArrayView<float>, int, int, ArrayView<int>, ArrayView<float>> _ropeK;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, LayerShape> _kvWrite;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, LayerShape> _attention;
    private readonly Action<Index1D, ArrayView<float>, ArrayView<float>> _swiGlu, _add;
    private readonly Action<Index1D, ArrayView<float>, int, ArrayView<float>, ArrayView<ulong>, ArrayView<int>, ArrayView<int>> _sample;

    public LlamaConfig Config => _c;
    public int MaxBatchTokens { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }
    public string Device => _acc.Name;

    public GpuRunner(Accelerator accelerator, LlamaModel model, int numBlocks, int blockSize, int maxBatchTokens)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchTokens, 1);
        _acc = accelerator;
        _c = model.Config;
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        MaxBatchTokens = maxBatchTokens;
        int T = maxBatchTokens, dim = _c.Dim, kv = _c.KvDim, hidden = _c.Hidden;

        _embedding = GpuMatrix.Upload(_acc, model.Embedding, _owned);
        _output = ReferenceEquals(model.Output, model.Embedding) ? _embedding : GpuMatrix.Upload(_acc, model.Output, _owned);
        _outputNorm = Floats(model.OutputNorm);
        _layers = model.Layers.Select(l => new GpuLayer(Floats(l.AttnNorm), GpuMatrix.Upload(_acc, l.Wq, _owned), GpuMatrix.Upload(_acc, l.Wk, _owned),
            GpuMatrix.Upload(_acc, l.Wv, _owned), GpuMatrix.Upload(_acc, l.Wo, _owned), Floats(l.FfnNorm), GpuMatrix.Upload(_acc, l.Gate, _owned),
            GpuMatrix.Upload(_acc, l.Up, _owned), GpuMatrix.Upload(_acc, l.Down, _owned))).ToArray();
        long poolFloats = (long)numBlocks * blockSize * kv;
        _kPool = Enumerable.Range(0, _c.Layers).Select(_ => Own(_acc.Allocate1D<float>(poolFloats))).ToArray();
        _vPool = Enumerable.Range(0, _c.Layers).Select(_ => Own(_acc.Allocate1D<float>(poolFloats))).ToArray();
        _rope = Own(_acc.Allocate1D(Ops.RopeTable(_c.MaxContext, _c.HeadDim, _c.RopeTheta)));
        _x = Own(_acc.Allocate1D<float>((long)T * dim));
        _xn = Own(_acc.Allocate1D<float>((long)T * dim));
        _q = Own(_acc.Allocate1D<float>((long)T * dim));
        _k = Own(_acc.Allocate1D<float>((long)T * kv));
        _v = Own(_acc.Allocate1D<float>((long)T * kv));
        _att = Own(_acc.Allocate1D<float>((long)T * dim));
        _tmp = Own(_acc.Allocate1D<float>((long)T * dim));
        _gate = Own(_acc.Allocate1D<float>((long)T * hidden));
        _up = Own(_acc.Allocate1D<float>((long)T * hidden));
        _logits = Own(_acc.Allocate1D<float>((long)T * _c.Vocab));
        _tokens = Own(_acc.Allocate1D<int>(T));
        _positions = Own(_acc.Allocate1D<int>(T));
        _tableStarts = Own(_acc.Allocate1D<int>(T));
        _identity = Own(_acc.Allocate1D(Enumerable.Range(0, T).ToArray()));
        _logitRows = Own(_acc.Allocate1D<int>(T));
        _sampled = Own(_acc.Allocate1D<int>(T));
        _samplePositions = Own(_acc.Allocate1D<int>(T));
        _temperatures = Own(_acc.Allocate1D<float>(T));
        _seeds = Own(_acc.Allocate1D<ulong>(T));
        _tables = _acc.Allocate1D<int>(_hTables.Length);
        _hTokens = new int[T];
        _hPositions = new int[T];
        _hTableStarts = new int[T];
        _hLogitRows = new int[T];

        _embed = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>, ArrayView<sbyte>, ArrayView<float>, int, int, ArrayView<int>, ArrayView<float>>(GpuKernels.Embed);
        _matVec = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<ushort>, ArrayView<sbyte>, ArrayView<float>, int, int, int, ArrayView<float>, ArrayView<float>, int>(GpuKernels.MatVec);
        _rmsNorm = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<float>, int, float>(GpuKernels.RmsNorm);
        _ropeK = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, int, ArrayView<int>, ArrayView<float>>(GpuKernels.Rope);
        _kvWrite = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, LayerShape>(GpuKernels.KvWrite);
        _attention = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, ArrayView<int>, LayerShape>(GpuKernels.Attention);
        _swiGlu = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(GpuKernels.SwiGlu);
        _add = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, ArrayView<float>>(GpuKernels.Add);
        _sample = _acc.LoadAutoGroupedStreamKernel<Index1D, ArrayView<float>, int, ArrayView<float>, ArrayView<ulong>, ArrayView<int>, ArrayView<int>>(GpuKernels.Sample);
    }

    private MemoryBuffer1D<T, Stride1D.Dense> Own<T>(MemoryBuffer1D<T, Stride1D.Dense> b) where T : unmanaged
    {
        _owned.Add(b);
        return b;
    }

    private unsafe MemoryBuffer1D<float, Stride1D.Dense> Floats(WeightMatrix norm) =>
        Own(_acc.Allocate1D(new ReadOnlySpan<float>(norm.F32, norm.Rows * norm.Cols).ToArray()));

    /// <inheritdoc />
    public void Forward(ReadOnlySpan<SeqChunk> batch, Span<float> logits)
    {
        int T = SeqChunks.Validate(batch, _c, MaxBatchTokens, NumBlocks, BlockSize);
        int logitCount = 0, tableTotal = 0;
        foreach (var ch in batch) tableTotal += ch.BlockTable.Length;
        if (_hTables.Length < tableTotal)
        {
            _hTables = new int[Math.Max(tableTotal, _hTables.Length * 2)];
            _tables.Dispose();
            _tables = _acc.Allocate1D<int>(_hTables.Length);
        }
        for (int ci = 0, t = 0, tableAt = 0; ci < batch.Length; ci++)
        {
            var ch = batch[ci];
            ch.BlockTable.Span.CopyTo(_hTables.AsSpan(tableAt));
            var ids = ch.Tokens.Span;
            for (int j = 0; j < ids.Length; j++, t++)
            {
                _hTokens[t] = ids[j];
                _hPositions[t] = ch.StartPosition + j;
                _hTableStarts[t] = tableAt;
            }
            if (ch.WantLogits) _hLogitRows[logitCount++] = t - 1;
            tableAt += ch.BlockTable.Length;
        }
        if ((long)logitCount * _c.Vocab > logits.Length)
            throw new ArgumentException($"logits holds {logits.Length} floats; the batch wants {logitCount} rows of {_c.Vocab}");
        _tokens.View.AsContiguous().SubView(0, T).CopyFromCPU(_hTokens.AsSpan(0, T));
        _positions.View.AsContiguous().SubView(0, T).CopyFromCPU(_hPositions.AsSpan(0, T));
        _tableStarts.View.AsContiguous().SubView(0, T).CopyFromCPU(_hTableStarts.AsSpan(0, T));
        _tables.View.AsContiguous().SubView(0, Math.Max(tableTotal, 1)).CopyFromCPU(_hTables.AsSpan(0, Math.Max(tableTotal, 1)));
        if (logitCount > 0) _logitRows.View.AsContiguous().SubView(0, logitCount).CopyFromCPU(_hLogitRows.AsSpan(0, logitCount));

        int dim = _c.Dim, kvDim = _c.KvDim, hidden = _c.Hidden;
        var shape = new LayerShape(_c.Heads, _c.KvHeads, _c.HeadDim, BlockSize);
        _embed(T * dim, _embedding.F32.View, _embedding.F16.View, _embedding.Q.View, _embedding.S.View, _embedding.Type, dim, _tokens.View, _x.View);
        for (int l = 0; l < _layers.Length; l++)
        {
            var layer = _layers[l];
            _rmsNorm(T, _x.View, _identity.View, layer.AttnNorm.View, _xn.View, dim, _c.NormEps);
            MatVec(layer.Wq, _xn, T, _q, dim);
            MatVec(layer.Wk, _xn, T, _k, kvDim);
            MatVec(layer.Wv, _xn, T, _v, kvDim);
            _ropeK(T * _c.Heads * (_c.HeadDim / 2), _q.View, _c.Heads, _c.HeadDim, _positions.View, _rope.View);
            _ropeK(T * _c.KvHeads * (_c.HeadDim / 2), _k.View, _c.KvHeads, _c.HeadDim, _positions.View, _rope.View);
            _kvWrite(T * kvDim, _k.View, _v.View, _kPool[l].View, _vPool[l].View, _positions.View, _tableStarts.View, _tables.View, shape);
            _attention(T * _c.Heads, _q.View, _att.View, _kPool[l].View, _vPool[l].View, _positions.View, _tableStarts.View, _tables.View, shape);
            MatVec(layer.Wo, _att, T, _tmp, dim);
            _add(T * dim, _x.View, _tmp.View);
            _rmsNorm(T, _x.View, _identity.View, layer.FfnNorm.View, _xn.View, dim, _c.NormEps);
            MatVec(layer.Gate, _xn, T, _gate, hidden);
            MatVec(layer.Up, _xn, T, _up, hidden);
            _swiGlu(T * hidden, _gate.View, _up.View);
            MatVec(layer.Down, _gate, T, _tmp, dim);
            _add(T * dim, _x.View, _tmp.View);
        }
        _lastLogitRows = logitCount;
        if (logitCount > 0)
        {
            _rmsNorm(logitCount, _x.View, _logitRows.View, _outputNorm.View, _xn.View, dim, _c.NormEps);
            MatVec(_output, _xn, logitCount, _logits, _c.Vocab);
        }
        _acc.Synchronize();
        if (logitCount > 0) _logits.View.AsContiguous().SubView(0, (long)logitCount * _c.Vocab).CopyToCPU(logits[..(logitCount * _c.Vocab)]);
    }

    private void MatVec(GpuMatrix w, MemoryBuffer1D<float, Stride1D.Dense> x, int tokens, MemoryBuffer1D<float, Stride1D.Dense> y, int yStride) =>
        _matVec(tokens * w.Rows, w.F32.View, w.F16.View, w.Q.View, w.S.View, w.Type, w.Rows, w.Cols, x.View, y.View, yStride);

    /// <inheritdoc />
    public void Sample(ReadOnlySpan<float> temperatures, ReadOnlySpan<ulong> seeds, ReadOnlySpan<int> positions, Span<int> tokens)
    {
        int n = temperatures.Length;
        if (n != _lastLogitRows || seeds.Length != n || positions.Length != n || tokens.Length < n)
            throw new ArgumentException($"the last step produced {_lastLogitRows} logits rows; got {n} temperatures, {seeds.Length} seeds, {positions.Length} positions");
        if (n == 0) return;
        _temperatures.View.AsContiguous().SubView(0, n).CopyFromCPU(temperatures);
        _seeds.View.AsContiguous().SubView(0, n).CopyFromCPU(seeds);
        _samplePositions.View.AsContiguous().SubView(0, n).CopyFromCPU(positions);
        _sample(n, _logits.View, _c.Vocab, _temperatures.View, _seeds.View, _samplePositions.View, _sampled.View);
        _acc.Synchronize();
        _sampled.View.AsContiguous().SubView(0, n).CopyToCPU(tokens[..n]);
    }

    public void Dispose()
    {
        _tables.Dispose();
        foreach (var b in _owned) b.Dispose();
        _owned.Clear();
    }

    private sealed record GpuLayer(MemoryBuffer1D<float, Stride1D.Dense> AttnNorm, GpuMatrix Wq, GpuMatrix Wk, GpuMatrix Wv, GpuMatrix Wo,
        MemoryBuffer1D<float, Stride1D.Dense> FfnNorm, GpuMatrix Gate, GpuMatrix Up, GpuMatrix Down);
}

/// <summary>A weight matrix on the device in its GGUF type (the other views are one-element placeholders).</summary>
internal sealed class GpuMatrix
{
    public required int Type { get; init; }
    public required int Rows { get; init; }
    public required int Cols { get; init; }
    public required MemoryBuffer1D<float, Stride1D.Dense> F32 { get; init; }
    public required MemoryBuffer1D<ushort, Stride1D.Dense> F16 { get; init; }
    public required MemoryBuffer1D<sbyte, Stride1D.Dense> Q { get; init; }
    public required MemoryBuffer1D<float, Stride1D.Dense> S { get; init; }

    public static unsafe GpuMatrix Upload(Accelerator acc, WeightMatrix w, List<IDisposable> owned)
    {
        long n = (long)w.Rows * w.Cols;
        MemoryBuffer1D<float, Stride1D.Dense> f32, s;
        MemoryBuffer1D<ushort, Stride1D.Dense> f16;
        MemoryBuffer1D<sbyte, Stride1D.Dense> q;
        int type;
        switch (w.Type)
        {
            case GgufTensorType.F32:
                type = GpuKernels.TypeF32;
                f32 = acc.Allocate1D<float>(n);
                f32.View.AsContiguous().CopyFromCPU(new ReadOnlySpan<float>(w.F32, checked((int)n)));
                f16 = acc.Allocate1D<ushort>(1); q = acc.Allocate1D<sbyte>(1); s = acc.Allocate1D<float>(1);
                break;
            case GgufTensorType.F16:
                type = GpuKernels.TypeF16;
                f16 = acc.Allocate1D<ushort>(n);
                f16.View.AsContiguous().CopyFromCPU(new ReadOnlySpan<ushort>(w.F16, checked((int)n)));
                f32 = acc.Allocate1D<float>(1); q = acc.Allocate1D<sbyte>(1); s = acc.Allocate1D<float>(1);
                break;
            default:
                type = GpuKernels.TypeQ8;
                var hq = new sbyte[n];
                var hs = new float[n / Q8.Block];
                Q8Gemm.Unpack(w.Quants, w.Scales, w.Rows, w.Cols, hq, hs);
                q = acc.Allocate1D(hq);
                s = acc.Allocate1D(hs);
                f32 = acc.Allocate1D<float>(1); f16 = acc.Allocate1D<ushort>(1);
                break;
        }
        owned.AddRange([f32, f16, q, s]);
        return new GpuMatrix { Type = type, Rows = w.Rows, Cols = w.Cols, F32 = f32, F16 = f16, Q = q, S = s };
    }
}
