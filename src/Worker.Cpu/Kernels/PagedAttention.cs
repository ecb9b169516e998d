using System.Runtime.CompilerServices;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Worker.Cpu;

/// <summary>
/// Grouped-query attention over the paged K/V pool. One call handles one sequence, one K/V head and a tile of
/// consecutive query tokens at positions pos0..pos0+nq-1 (all heads of the K/V head's group): it walks the
/// sequence's block table once, loads each K/V block tile once for every query and head of the tile, and keeps a
/// flash-attention style running max / sum / accumulator per (query, head), rescaled per block, so no score
/// vector of context length is ever stored. The causal mask is the per-query position bound.
/// Decode is the nq = 1 case batched across sequences by the runner (one work item per sequence x K/V head);
/// chunked prefill tiles the chunk's queries so cached prefix blocks and the chunk's own blocks are read once per tile.
/// </summary>
internal static unsafe class PagedAttention
{
    /// <summary>Floats of scratch one call needs.</summary>
    public static int ScratchFloats(int maxQueries, int group, int headDim, int blockSize) => maxQueries * group * (headDim + 2) + blockSize;

    /// <param name="q">query of token 0 of the tile, head 0 (token stride <paramref name="qStride"/>, head stride headDim)</param>
    /// <param name="o">output laid out like q</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Attend(KvPool pool, int layer, int kvHead, ReadOnlySpan<int> blockTable, int pos0, int nq,
        float* q, float* o, int qStride, float* scratch)
    {
        var c = pool.Config;
        int hd = c.HeadDim, group = c.Heads / c.KvHeads, bs = pool.BlockSize;
        float scale = 1f / MathF.Sqrt(hd);
        int states = nq * group;
        float* m = scratch, l = scratch + states, acc = scratch + 2 * states, scores = acc + states * hd;
        new Span<float>(m, states).Fill(float.NegativeInfinity);
        new Span<float>(l, states).Clear();
        new Span<float>(acc, states * hd).Clear();

        int lastPos = pos0 + nq - 1;
        for (int b = 0; b <= lastPos / bs; b++)
        {
            int block = blockTable[b];
            float* kTile = pool.K(layer, block, kvHead), vTile = pool.V(layer, block, kvHead);
            int blockStart = b * bs;
            for (int qi = 0; qi < nq; qi++)
            {
                int valid = Math.Min(bs, pos0 + qi - blockStart + 1);
                if (valid <= 0) continue;
                for (int j = 0; j < group; j++)
                {
                    int st = qi * group + j;
                    float* qPtr = q + (long)qi * qStride + (kvHead * group + j) * hd;
                    float blockMax = float.NegativeInfinity;
                    for (int s = 0; s < valid; s++)
                    {
                        float score = DotHead(qPtr, kTile + s * hd, hd) * scale;
                        scores[s] = score;
                        blockMax = MathF.Max(blockMax, score);
                    }
                    var blockScores = new Span<float>(scores, valid);
                    float* a = acc + (long)st * hd;
                    float mNew = MathF.Max(m[st], blockMax);
                    if (mNew > m[st] && l[st] != 0)
                    {
                        float corr = MathF.Exp(m[st] - mNew);
                        l[st] *= corr;
                        TensorPrimitives.Multiply(new ReadOnlySpan<float>(a, hd), corr, new Span<float>(a, hd));
                    }
                    m[st] = mNew;
                    // p_s = exp(score_s - m) for the whole block in one vectorized call, then acc += p_s * v_s.
                    TensorPrimitives.Subtract(blockScores, mNew, blockScores);
                    TensorPrimitives.Exp(blockScores, blockScores);
                    l[st] += TensorPrimitives.Sum(blockScores);
                    for (int s = 0; s < valid; s++) AxpyHead(a, vTile + s * hd, scores[s], hd);
                }
            }
        }
        for (int qi = 0; qi < nq; qi++)
            for (int j = 0; j < group; j++)
            {
                int st = qi * group + j;
                TensorPrimitives.Multiply(new ReadOnlySpan<float>(acc + (long)st * hd, hd), 1f / l[st],
                    new Span<float>(o + (long)qi * qStride + (kvHead * group + j) * hd, hd));
            }
    }

    /// <summary>q · k over one head (head dims are multiples of 16 in practice: 64, 128; any even size works).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotHead(float* q, float* k, int hd)
    {
        int i = 0;
        float sum = 0;
        if (Vector512.IsHardwareAccelerated && hd >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= hd; i += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(q + i), Vector512.Load(k + i), acc);
            sum = Vector512.Sum(acc);
        }
        else if (Vector256.IsHardwareAccelerated && hd >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= hd; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(q + i), Vector256.Load(k + i), acc);
            sum = Vector256.Sum(acc);
        }
        for (; i < hd; i++) sum += q[i] * k[i];
        return sum;
    }

    /// <summary>a += p * v over one head.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AxpyHead(float* a, float* v, float p, int hd)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated && hd >= 16)
        {
            var pv = Vector512.Create(p);
            for (; i + 16 <= hd; i += 16) Vector512.FusedMultiplyAdd(Vector512.Load(v + i), pv, Vector512.Load(a + i)).Store(a + i);
        }
        else if (Vector256.IsHardwareAccelerated && hd >= 8)
        {
            var pv = Vector256.Create(p);
            for (; i + 8 <= hd; i += 8) Vector256.FusedMultiplyAdd(Vector256.Load(v + i), pv, Vector256.Load(a + i)).Store(a + i);
        }
        for (; i < hd; i++) a[i] += p * v[i];
    }
}
