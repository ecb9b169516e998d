using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Worker.Cpu;

/// <summary>
/// One sequence's slice of a continuous-batching step: <see cref="Tokens"/> sit at positions StartPosition.. of the
/// sequence; <see cref="BlockTable"/> maps the sequence's logical blocks to pool blocks and must cover every position
/// up to StartPosition + Tokens.Length - 1. <see cref="WantLogits"/>: return logits for the chunk's last token.
/// </summary>
public readonly record struct SeqChunk(ReadOnlyMemory<int> Tokens, int StartPosition, ReadOnlyMemory<int> BlockTable, bool WantLogits);

/// <summary>
/// Runs Llama forward steps over a <see cref="KvPool"/>. Each step takes any mix of prefill chunks and decode tokens of
/// different sequences: all tokens go through the matrix kernels together; per layer each token's K/V is written into
/// the pool through its sequence's block table and attention then reads positions 0..p of that sequence from the pool
/// (cached prefix blocks and the chunk just written alike). All scratch is allocated at construction for
/// maxBatchTokens tokens, so a step allocates nothing. Not thread-safe: one step at a time per runner.
/// </summary>
public sealed unsafe class LlamaRunner : IForwardRunner
{
    /// <summary>Query tokens per prefill attention work item.</summary>
    internal const int QueryTile = 16;

    private readonly LlamaModel _model;
    private readonly KvPool _pool;
    private readonly LlamaConfig _c;
    private readonly WorkerGang _gang;
    private readonly List<nint> _allocations = [];
    private readonly float[] _rope;
    private readonly float* _ropePtr;

    // Activations, [maxBatchTokens][width].
    private readonly float* _x, _xn, _q, _k, _v, _att, _tmp, _gate, _up;
    private readonly sbyte* _xq;
    private readonly float* _xd;
    private readonly sbyte* _xqNeg;
    // Per-worker scratch.
    private readonly float*[] _rowScratch;
    private readonly float*[] _attnScratch;

    // The step being run.
    private readonly SeqChunk[] _chunks;
    private readonly int[] _chunkFirstToken;
    private readonly int[] _logitRows;
    private readonly AttnItem[] _attnItems;
    private int _attnItemCount;
    private int _layer;

    // The matrix job being run: up to 3 matrices sharing one input.
    private readonly WeightMatrix?[] _mmW = new WeightMatrix?[3];
    private readonly nint[] _mmOut = new nint[3];
    private readonly int[] _mmOutStride = new int[3];
    private readonly int[] _mmChunkRows = new int[3];
    private readonly int[] _mmFirstItem = new int[4];
    private float* _mmX;
    private int _mmTokens;
    private readonly Action<int, int> _mmBody;
    private readonly Action<int, int> _attnBody;

    public LlamaConfig Config => _c;
    public int MaxBatchTokens { get; }
    public int Threads => _gang.Threads;
    public int NumBlocks => _pool.NumBlocks;
    /// <summary>The K/V pool the runner reads and writes (the host tier copies blocks out of and into it).</summary>
    public KvPool Pool => _pool;
    public int BlockSize => _pool.BlockSize;
    public CpuIsa Isa { get; }

    public LlamaRunner(LlamaModel model, KvPool pool, int maxBatchTokens, int threads)
        : this(model, pool, maxBatchTokens, threads, CpuIsas.Best)
    {
    }

    public LlamaRunner(LlamaModel model, KvPool pool, int maxBatchTokens, int threads, CpuIsa isa)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(pool);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBatchTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        if (!CpuIsas.IsSupported(isa)) throw new PlatformNotSupportedException($"{isa} kernels are not supported on this CPU (best: {CpuIsas.Best})");
        if (pool.Config != model.Config) throw new ArgumentException("the K/V pool was shaped for a different model config");
        _model = model;
        _pool = pool;
        _c = model.Config;
        Isa = isa;
        MaxBatchTokens = maxBatchTokens;
        int T = maxBatchTokens, dim = _c.Dim, kv = _c.KvDim, hidden = _c.Hidden, widest = Math.Max(dim, hidden);
        _x = Alloc<float>((long)T * dim);
        _xn = Alloc<float>((long)T * dim);
        _q = Alloc<float>((long)T * dim);
        _k = Alloc<float>((long)T * kv);
        _v = Alloc<float>((long)T * kv);
        _att = Alloc<float>((long)T * dim);
        _tmp = Alloc<float>((long)T * dim);
        _gate = Alloc<float>((long)T * hidden);
        _up = Alloc<float>((long)T * hidden);
        _xq = Alloc<sbyte>((long)T * widest);
        _xd = Alloc<float>((long)T * widest / Q8.Block + 1);
        _xqNeg = Alloc<sbyte>((long)T * widest);
        _rowScratch = new float*[threads];
        _attnScratch = new float*[threads];
        int attnFloats = PagedAttention.ScratchFloats(QueryTile, _c.Heads / _c.KvHeads, _c.HeadDim, pool.BlockSize);
        for (int i = 0; i < threads; i++)
        {
            _rowScratch[i] = Alloc<float>(widest);
            _attnScratch[i] = Alloc<float>(attnFloats);
        }
        _rope = GC.AllocateArray<float>(_c.MaxContext * _c.HeadDim, pinned: true);
        Ops.RopeTable(_c.MaxContext, _c.HeadDim, _c.RopeTheta).CopyTo(_rope, 0);
        _ropePtr = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _rope[0]);
        _chunks = new SeqChunk[T];
        _chunkFirstToken = new int[T + 1];
        _logitRows = new int[T];
        _attnItems = new AttnItem[(T / QueryTile + T) * _c.KvHeads];
        _mmBody = MatMulItem;
        _attnBody = AttentionItem;
        _gang = new WorkerGang(threads);
    }

    /// <summary>
    /// Runs one step. <paramref name="logits"/> receives one row of Vocab floats per chunk with WantLogits (its last
    /// token), in batch order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public void Forward(ReadOnlySpan<SeqChunk> batch, Span<float> logits)
    {
        int tokens = Prepare(batch, out int logitCount);
        if ((long)logitCount * _c.Vocab > logits.Length)
            throw new ArgumentException($"logits holds {logits.Length} floats; the batch wants {logitCount} rows of {_c.Vocab}");
        int dim = _c.Dim, kvDim = _c.KvDim, hd = _c.HeadDim;

        // Embedding lookup.
        for (int ci = 0, t = 0; ci < batch.Length; ci++)
            foreach (int token in batch[ci].Tokens.Span)
                _model.Embedding.DequantizeRow(token, _x + (long)t++ * dim);

        for (int l = 0; l < _c.Layers; l++)
        {
            var layer = _model.Layers[l];
            _layer = l;
            for (int t = 0; t < tokens; t++) Ops.RmsNorm(_x + (long)t * dim, layer.AttnNorm.F32, _xn + (long)t * dim, dim, _c.NormEps);
            MatMulJob(_xn, tokens, layer.Wq, _q, dim, layer.Wk, _k, kvDim, layer.Wv, _v, kvDim);

            // RoPE, then K/V of every new token into its slot of the pool.
            for (int ci = 0; ci < batch.Length; ci++)
            {
                var table = batch[ci].BlockTable.Span;
                for (int t = _chunkFirstToken[ci]; t < _chunkFirstToken[ci + 1]; t++)
                {
                    int pos = batch[ci].StartPosition + t - _chunkFirstToken[ci];
                    float* cs = _ropePtr + (long)pos * hd;
                    Ops.Rope(_q + (long)t * dim, _c.Heads, hd, cs);
                    Ops.Rope(_k + (long)t * kvDim, _c.KvHeads, hd, cs);
                    int block = table[pos / _pool.BlockSize], slot = pos % _pool.BlockSize;
                    for (int g = 0; g < _c.KvHeads; g++)
                    {
                        new ReadOnlySpan<float>(_k + (long)t * kvDim + g * hd, hd).CopyTo(new Span<float>(_pool.K(l, block, g) + slot * hd, hd));
                        new ReadOnlySpan<float>(_v + (long)t * kvDim + g * hd, hd).CopyTo(new Span<float>(_pool.V(l, block, g) + slot * hd, hd));
                    }
                }
            }
            _gang.Run(_attnItemCount, _attnBody);

            MatMulJob(_att, tokens, layer.Wo, _tmp, dim);
            Ops.Add(_x, _tmp, tokens * dim);
            for (int t = 0; t < tokens; t++) Ops.RmsNorm(_x + (long)t * dim, layer.FfnNorm.F32, _xn + (long)t * dim, dim, _c.NormEps);
            MatMulJob(_xn, tokens, layer.Gate, _gate, _c.Hidden, layer.Up, _up, _c.Hidden);
            Ops.SwiGlu(_gate, _up, tokens * _c.Hidden);
            MatMulJob(_gate, tokens, layer.Down, _tmp, dim);
            Ops.Add(_x, _tmp, tokens * dim);
        }

        if (logitCount == 0) return;
        for (int i = 0; i < logitCount; i++)
            Ops.RmsNorm(_x + (long)_logitRows[i] * dim, _model.OutputNorm.F32, _xn + (long)i * dim, dim, _c.NormEps);
        fixed (float* out_ = logits)
            MatMulJob(_xn, logitCount, _model.Output, out_, _c.Vocab);
    }

    /// <summary>Validates the batch, records chunk boundaries, logit rows and attention work items; returns the token count.</summary>
    private int Prepare(ReadOnlySpan<SeqChunk> batch, out int logitCount)
    {
        SeqChunks.Validate(batch, _c, MaxBatchTokens, _pool.NumBlocks, _pool.BlockSize);
        int tokens = 0;
        logitCount = 0;
        _attnItemCount = 0;
        for (int ci = 0; ci < batch.Length; ci++)
        {
            var ch = batch[ci];
            int n = ch.Tokens.Length;
            _chunks[ci] = ch;
            _chunkFirstToken[ci] = tokens;
            for (int q0 = 0; q0 < n; q0 += QueryTile)
                for (int g = 0; g < _c.KvHeads; g++)
                    _attnItems[_attnItemCount++] = new AttnItem(ci, g, tokens + q0, Math.Min(QueryTile, n - q0), ch.StartPosition + q0);
            tokens += n;
            if (ch.WantLogits) _logitRows[logitCount++] = tokens - 1;
        }
        _chunkFirstToken[batch.Length] = tokens;
        return tokens;
    }

    private void AttentionItem(int item, int worker)
    {
        var it = _attnItems[item];
        PagedAttention.Attend(_pool, _layer, it.KvHead, _chunks[it.Chunk].BlockTable.Span, it.Position, it.Count,
            _q + (long)it.FirstToken * _c.Dim, _att + (long)it.FirstToken * _c.Dim, _c.Dim, _attnScratch[worker]);
    }

    private void MatMulJob(float* x, int tokens, WeightMatrix w0, float* y0, int s0,
        WeightMatrix? w1 = null, float* y1 = null, int s1 = 0, WeightMatrix? w2 = null, float* y2 = null, int s2 = 0)
    {
        _mmX = x;
        _mmTokens = tokens;
        if (w0.Type == GgufTensorType.Q8_0 || w1?.Type == GgufTensorType.Q8_0 || w2?.Type == GgufTensorType.Q8_0)
            for (int t = 0; t < tokens; t++)
                Q8.QuantizeRow(x + (long)t * w0.Cols, w0.Cols, _xq + (long)t * w0.Cols, _xd + (long)t * (w0.Cols / Q8.Block), _xqNeg + (long)t * w0.Cols);
        _mmW[0] = w0; _mmOut[0] = (nint)y0; _mmOutStride[0] = s0;
        _mmW[1] = w1; _mmOut[1] = (nint)y1; _mmOutStride[1] = s1;
        _mmW[2] = w2; _mmOut[2] = (nint)y2; _mmOutStride[2] = s2;
        int items = 0;
        for (int m = 0; m < 3; m++)
        {
            _mmFirstItem[m] = items;
            if (_mmW[m] is not { } w) continue;
            // ~4 items per thread per matrix (dynamic balance), rows a multiple of the Q8_0 row tile (16).
            int rows = w.Rows;
            int chunk = _gang.Threads == 1 ? rows : Math.Max(Q8Gemm.RowTile, (rows / (_gang.Threads * 4) + Q8Gemm.RowTile - 1) & ~(Q8Gemm.RowTile - 1));
            _mmChunkRows[m] = chunk;
            items += (rows + chunk - 1) / chunk;
        }
        _mmFirstItem[3] = items;
        _gang.Run(items, _mmBody);
    }

    private void MatMulItem(int item, int worker)
    {
        int m = item >= _mmFirstItem[2] && _mmW[2] is not null ? 2 : item >= _mmFirstItem[1] && _mmW[1] is not null ? 1 : 0;
        var w = _mmW[m]!;
        int r0 = (item - _mmFirstItem[m]) * _mmChunkRows[m];
        int r1 = Math.Min(w.Rows, r0 + _mmChunkRows[m]);
        MatMul.Rows(w, r0, r1, _mmX, _xq, _xqNeg, _xd, _mmTokens, (float*)_mmOut[m], _mmOutStride[m], Isa, _rowScratch[worker]);
    }

    private T* Alloc<T>(long count) where T : unmanaged
    {
        var p = NativeMemory.AlignedAlloc((nuint)(Math.Max(count, 16) * sizeof(T)), 64);
        _allocations.Add((nint)p);
        return (T*)p;
    }

    public void Dispose()
    {
        _gang.Dispose();
        foreach (var p in _allocations) NativeMemory.AlignedFree((void*)p);
        _allocations.Clear();
    }

    private readonly record struct AttnItem(int Chunk, int KvHead, int FirstToken, int Count, int Position);
}
