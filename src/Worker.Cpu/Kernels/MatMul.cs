using System.Runtime.CompilerServices;

namespace Worker.Cpu;

/// <summary>
/// Y = X W^T for a range of W's rows and all tokens of the step (decode: a batch of matvecs; prefill: a matmul).
/// Tokens are taken in tiles of <see cref="TokenTile"/> so a tile's activations stay in L2 while W's rows stream past
/// once per tile; each (row, token) result is the same dot product whatever the batch, so a token's output does not
/// depend on what else is in the step. F16 rows are widened once per tile into per-thread scratch; Q8_0 goes to
/// <see cref="Q8Gemm"/> (int8 dots against activations quantized per 32, as llama.cpp's q8_0 x q8_0 path), whose row
/// ranges must start on a multiple of <see cref="Q8Gemm.RowTile"/>.
/// </summary>
internal static unsafe class MatMul
{
    public const int TokenTile = 16;

    /// <param name="x">f32 activations [tokens][w.Cols] (F32/F16 weights)</param>
    /// <param name="xq">int8 activations [tokens][w.Cols], <paramref name="xn"/> the same negated, <paramref name="xd"/> scales [tokens][w.Cols/32] (Q8_0 weights)</param>
    /// <param name="y">output, element (t, r) at y[t * yStride + r]</param>
    /// <param name="rowScratch">w.Cols floats private to the calling thread (F16)</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(WeightMatrix w, int r0, int r1, float* x, sbyte* xq, sbyte* xn, float* xd, int tokens, float* y, int yStride,
        CpuIsa isa, float* rowScratch)
    {
        int cols = w.Cols;
        if (w.Type == GgufTensorType.Q8_0)
        {
            Q8Gemm.Rows(w.Quants, w.Scales, w.Rows, cols, r0 / Q8Gemm.RowTile, Q8Gemm.Tiles(r1), xq, xn, xd, tokens, y, yStride, isa);
            return;
        }
        for (int t0 = 0; t0 < tokens; t0 += TokenTile)
        {
            int t1 = Math.Min(tokens, t0 + TokenTile);
            for (int r = r0; r < r1; r++)
            {
                if (w.Type == GgufTensorType.F16)
                {
                    Half* wr = w.F16 + (long)r * cols;
                    if (t1 - t0 < 4)
                    {
                        // Decode: widen inside the dot (bit-identical to widening first).
                        for (int t = t0; t < t1; t++) y[(long)t * yStride + r] = Dot.F16(wr, x + (long)t * cols, cols, isa, rowScratch);
                        continue;
                    }
                    Dot.HalfToSingle(wr, rowScratch, cols, isa);
                    F32Row(rowScratch, x, cols, t0, t1, y + r, yStride, isa);
                }
                else
                {
                    F32Row(w.F32 + (long)r * cols, x, cols, t0, t1, y + r, yStride, isa);
                }
            }
        }
    }

    /// <summary>One f32 weight row against tokens [t0, t1): four at a time, then one at a time (same per-token math).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void F32Row(float* wr, float* x, int cols, int t0, int t1, float* yCol, int yStride, CpuIsa isa)
    {
        float* four = stackalloc float[4];
        int t = t0;
        for (; t + 4 <= t1; t += 4)
        {
            Dot.F32x4(wr, x + (long)t * cols, cols, cols, isa, four);
            for (int k = 0; k < 4; k++) yCol[(long)(t + k) * yStride] = four[k];
        }
        for (; t < t1; t++) yCol[(long)t * yStride] = Dot.F32(wr, x + (long)t * cols, cols, isa);
    }
}
