using ILGPU;

namespace Worker.Gpu;

/// <summary>
/// The Llama forward pass as ILGPU kernels (C#, compiled to PTX through the CUDA driver, or run by ILGPU's CPU
/// accelerator in tests). One thread per output element: a matrix-vector product is one thread per (token, row),
/// attention one thread per (token, query head) walking the sequence's block table with a running max/sum (flash
/// style, no score vector), norms one thread per row. Weights keep their GGUF type on the device: F32, F16 (as raw
/// bits, widened in the kernel) and Q8_0 (int8 quants + f32 block scales; activations stay f32).
/// </summary>
internal static class GpuKernels
{
    public const int TypeF32 = 0, TypeF16 = 1, TypeQ8 = 2;

    /// <summary>f16 bits to f32: magnitude bits shifted into place and rebiased by 2^112 (exact for finite values), sign or-ed back.</summary>
    public static float HalfToFloat(ushort h)
    {
        float mag = Interop.IntAsFloat((uint)(h & 0x7fff) << 13) * 5.192297e33f;
        return (h & 0x8000) != 0 ? -mag : mag;
    }

    private static float Weight(ArrayView<float> f32, ArrayView<ushort> f16, ArrayView<sbyte> q, ArrayView<float> s, int type, long i) =>
        type == TypeF32 ? f32[i] : type == TypeF16 ? HalfToFloat(f16[i]) : q[i] * s[i / 32];

    /// <summary>x[t, c] = row tokens[t] of the embedding matrix (i over tokens x cols).</summary>
    public static void Embed(Index1D i, ArrayView<float> f32, ArrayView<ushort> f16, ArrayView<sbyte> q, ArrayView<float> s, int type,
        int cols, ArrayView<int> tokens, ArrayView<float> x)
    {
        int t = i / cols, c = i % cols;
        x[i] = Weight(f32, f16, q, s, type, (long)tokens[t] * cols + c);
    }

    /// <summary>y[t * yStride + r] = W[r, :] · x[t, :] (i over tokens x rows).</summary>
    public static void MatVec(Index1D i, ArrayView<float> f32, ArrayView<ushort> f16, ArrayView<sbyte> q, ArrayView<float> s, int type,
        int rows, int cols, ArrayView<float> x, ArrayView<float> y, int yStride)
    {
        int t = i / rows, r = i % rows;
        long w0 = (long)r * cols, x0 = (long)t * cols;
        float sum = 0;
        if (type == TypeQ8)
        {
            for (int b = 0; b < cols / 32; b++)
            {
                float block = 0;
                for (int j = 0; j < 32; j++) block += q[w0 + b * 32 + j] * x[x0 + b * 32 + j];
                sum += block * s[w0 / 32 + b];
            }
        }
        else if (type == TypeF16)
        {
            for (int c = 0; c < cols; c++) sum += HalfToFloat(f16[w0 + c]) * x[x0 + c];
        }
        else
        {
            for (int c = 0; c < cols; c++) sum += f32[w0 + c] * x[x0 + c];
        }
        y[(long)t * yStride + r] = sum;
    }

    /// <summary>y[i, :] = RMSNorm(x[rows[i], :]) * w.</summary>
    public static void RmsNorm(Index1D i, ArrayView<float> x, ArrayView<int> rows, ArrayView<float> w, ArrayView<float> y, int dim, float eps)
    {
        long src = (long)rows[i] * dim, dst = (long)(int)i * dim;
        float ss = 0;
        for (int c = 0; c < dim; c++) ss += x[src + c] * x[src + c];
        float scale = 1f / MathF.Sqrt(ss / dim + eps);
        for (int c = 0; c < dim; c++) y[dst + c] = x[src + c] * scale * w[c];
    }

    /// <summary>Rotates pair p of head h of token t by the table's (cos, sin) at the token's position (i over tokens x heads x headDim/2).</summary>
    public static void Rope(Index1D i, ArrayView<float> x, int heads, int headDim, ArrayView<int> positions, ArrayView<float> cosSin)
    {
        int half = headDim / 2;
        int t = i / (heads * half), rem = i % (heads * half), h = rem / half, p = rem % half;
        long at = (long)t * heads * headDim + h * headDim + 2 * p;
        long cs = ((long)positions[t] * half + p) * 2;
        float c = cosSin[cs], sn = cosSin[cs + 1], x0 = x[at], x1 = x[at + 1];
        x[at] = x0 * c - x1 * sn;
        x[at + 1] = x0 * sn + x1 * c;
    }

    /// <summary>Slot of position <paramref name="pos"/> of the sequence whose block table starts at tables[tableStart].</summary>
    private static long Slot(ArrayView<int> tables, int tableStart, int pos, int blockSize, int kvHeads, int g, int headDim) =>
        (((long)tables[tableStart + pos / blockSize] * kvHeads + g) * blockSize + pos % blockSize) * headDim;

    /// <summary>Copies each new token's K and V into its pool slot (i over tokens x kvDim); pool layout [block][kvHead][slot][headDim].</summary>
    public static void KvWrite(Index1D i, ArrayView<float> k, ArrayView<float> v, ArrayView<float> kPool, ArrayView<float> vPool,
        ArrayView<int> positions, ArrayView<int> tableStarts, ArrayView<int> tables, LayerShape shape)
    {
        int kvDim = shape.KvHeads * shape.HeadDim;
        int t = i / kvDim, e = i % kvDim, g = e / shape.HeadDim, d = e % shape.HeadDim;
        long slot = Slot(tables, tableStarts[t], positions[t], shape.BlockSize, shape.KvHeads, g, shape.HeadDim) + d;
        kPool[slot] = k[i];
        vPool[slot] = v[i];
    }

    /// <summary>
    /// Causal attention of token t, query head h over positions 0..positions[t] of its sequence, read from the pool
    /// through the block table (i over tokens x heads). The output row doubles as the accumulator, rescaled whenever the
    /// running max grows.
    /// </summary>
    public static void Attention(Index1D i, ArrayView<float> q, ArrayView<float> o, ArrayView<float> kPool, ArrayView<float> vPool,
        ArrayView<int> positions, ArrayView<int> tableStarts, ArrayView<int> tables, LayerShape shape)
    {
        int hd = shape.HeadDim, dim = shape.Heads * hd;
        int t = i / shape.Heads, h = i % shape.Heads, g = h / (shape.Heads / shape.KvHeads);
        long qa = (long)t * dim + h * hd;
        float scale = 1f / MathF.Sqrt(hd);
        float m = float.NegativeInfinity, l = 0;
        for (int d = 0; d < hd; d++) o[qa + d] = 0;
        for (int p = 0; p <= positions[t]; p++)
        {
            long slot = Slot(tables, tableStarts[t], p, shape.BlockSize, shape.KvHeads, g, hd);
            float score = 0;
            for (int d = 0; d < hd; d++) score += q[qa + d] * kPool[slot + d];
            score *= scale;
            if (score > m)
            {
                float corr = MathF.Exp(m - score);
                l *= corr;
                for (int d = 0; d < hd; d++) o[qa + d] *= corr;
                m = score;
            }
            float w = MathF.Exp(score - m);
            l += w;
            for (int d = 0; d < hd; d++) o[qa + d] += w * vPool[slot + d];
        }
        for (int d = 0; d < hd; d++) o[qa + d] /= l;
    }

    /// <summary>g = silu(g) * u.</summary>
    public static void SwiGlu(Index1D i, ArrayView<float> g, ArrayView<float> u) => g[i] = g[i] * (u[i] / (1f + MathF.Exp(-g[i])));

    /// <summary>x += y.</summary>
    public static void Add(Index1D i, ArrayView<float> x, ArrayView<float> y) => x[i] += y[i];

    /// <summary>
    /// One token per logits row: argmax (lowest id on ties, NaN never wins) when temperature &lt;= 0, else a draw from
    /// softmax(logits / temperature) with the uniform number SplitMix64(seed, position) — the host sampler's algorithm,
    /// so recomputing a position draws the same token.
    /// </summary>
    public static void Sample(Index1D row, ArrayView<float> logits, int vocab, ArrayView<float> temperatures, ArrayView<ulong> seeds,
        ArrayView<int> positions, ArrayView<int> tokens)
    {
        long at = (long)(int)row * vocab;
        int best = 0;
        float max = float.NegativeInfinity;
        for (int j = 0; j < vocab; j++)
        {
            if (logits[at + j] > max)
            {
                max = logits[at + j];
                best = j;
            }
        }
        float temp = temperatures[row];
        if (temp <= 0)
        {
            tokens[row] = best;
            return;
        }
        double sum = 0;
        for (int j = 0; j < vocab; j++)
        {
            float v = logits[at + j];
            sum += float.IsNaN(v) ? 0 : MathF.Exp((v - max) / temp);
        }
        ulong z = seeds[row] + 0x9E3779B97F4A7C15UL * (ulong)(positions[row] + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        double u = (z >> 11) * (1.0 / (1UL << 53)) * sum;
        double acc = 0;
        for (int j = 0; j < vocab; j++)
        {
            float v = logits[at + j];
            acc += float.IsNaN(v) ? 0 : MathF.Exp((v - max) / temp);
            if (u < acc)
            {
                tokens[row] = j;
                return;
            }
        }
        tokens[row] = best;
    }
}

/// <summary>Attention geometry passed to the pool kernels.</summary>
internal readonly record struct LayerShape(int Heads, int KvHeads, int HeadDim, int BlockSize);
