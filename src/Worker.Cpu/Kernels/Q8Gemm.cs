using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Worker.Cpu;

/// <summary>
/// Q8_0 matrix kernels over a row-interleaved layout. At load, rows are grouped in tiles of <see cref="RowTile"/> and
/// each 32-column block of a tile is stored as 8 groups of [16 rows x 4 int8] (512 bytes), and in a separate array
/// the tile's 16 f16 block scales. One 32-bit lane then holds 4 consecutive weights of one row, so a multiply-add of
/// the 4 activation bytes broadcast to every lane adds one row's 4-term dot to each lane: 8 of them give 16 rows'
/// exact int32 block dots with no horizontal reduction and one convert + scale per 16 rows (llama.cpp's x86 q8_0
/// dot converts and scales per 32 weights of one row). The int8 x int8 lane dot is llama.cpp's: |w| x sign(x, w)
/// through <c>vpmaddubsw</c> + <c>vpmaddwd</c> (or AVX-VNNI <c>vpdpbusd</c> where the CPU has it); on AVX-512 one
/// 512-bit register holds the whole 16-row group and sign(x, w) is a masked blend of x and the precomputed -x
/// (AVX-512 has no <c>vpsignb</c>). Bytes per block equal GGUF's (16 x 32 quants + 16 f16 scales = 16 x 34), so a
/// decode step streams the file's size. Every ISA level computes the same int32 block dots and the same fused
/// multiply-add per row and block, so results are bit-identical across levels and across the 1- and 4-token kernels.
/// </summary>
internal static unsafe class Q8Gemm
{
    public const int RowTile = 16;
    public const int TileBlockBytes = RowTile * Q8.Block;

    public static int Tiles(int rows) => (rows + RowTile - 1) / RowTile;

    /// <summary>Repacks GGUF Q8_0 blocks (f16 scale + 32 int8, row-major) into the tiled layout; padding rows are zero.</summary>
    public static void Pack(byte* gguf, int rows, int cols, sbyte* quants, Half* scales)
    {
        int blocks = cols / Q8.Block;
        long tiles = Tiles(rows);
        new Span<byte>(quants, checked((int)(tiles * blocks * TileBlockBytes))).Clear();
        for (long i = 0; i < tiles * blocks * RowTile; i++) scales[i] = (Half)0f;
        for (int r = 0; r < rows; r++)
        {
            int tile = r / RowTile, lane = r % RowTile;
            for (int b = 0; b < blocks; b++)
            {
                byte* src = gguf + ((long)r * blocks + b) * GgufTensorTypes.Q8BlockBytes;
                scales[((long)tile * blocks + b) * RowTile + lane] = *(Half*)src;
                sbyte* dst = quants + ((long)tile * blocks + b) * TileBlockBytes + lane * 4;
                for (int k = 0; k < 8; k++)
                    for (int j = 0; j < 4; j++)
                        dst[k * RowTile * 4 + j] = ((sbyte*)src)[2 + k * 4 + j];
            }
        }
    }

    /// <summary>Unpacks rows back to row-major int8 quants and f32 block scales (for devices that keep GGUF's row order).</summary>
    public static void Unpack(sbyte* quants, Half* scales, int rows, int cols, Span<sbyte> q, Span<float> d)
    {
        int blocks = cols / Q8.Block;
        for (int r = 0; r < rows; r++)
        {
            int tile = r / RowTile, lane = r % RowTile;
            for (int b = 0; b < blocks; b++)
            {
                long block = (long)tile * blocks + b;
                d[r * blocks + b] = (float)scales[block * RowTile + lane];
                sbyte* src = quants + block * TileBlockBytes + lane * 4;
                int o = r * cols + b * Q8.Block;
                for (int k = 0; k < 8; k++)
                    for (int j = 0; j < 4; j++) q[o + k * 4 + j] = src[k * RowTile * 4 + j];
            }
        }
    }

    /// <summary>Element (r, c) of the packed matrix as its signed quant and its block scale.</summary>
    public static (sbyte Quant, float Scale) At(sbyte* quants, Half* scales, int cols, int r, int c)
    {
        int blocks = cols / Q8.Block, tile = r / RowTile, lane = r % RowTile, b = c / Q8.Block, k = c % Q8.Block / 4, j = c % 4;
        long block = (long)tile * blocks + b;
        return (quants[block * TileBlockBytes + k * RowTile * 4 + lane * 4 + j], (float)scales[block * RowTile + lane]);
    }

    /// <summary>
    /// y[t * yStride + r] = row r · token t for row tiles [tile0, tile1) and tokens [0, tokens); rows at or past
    /// <paramref name="rows"/> (padding of the last tile) are not written. Tokens go four at a time through each tile
    /// while it is hot in cache, the rest one at a time.
    /// </summary>
    /// <param name="xq">int8 activations [tokens][cols], <paramref name="xn"/> the same negated, <paramref name="xd"/> their scales [tokens][cols/32]</param>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rows(sbyte* quants, Half* scales, int rows, int cols, int tile0, int tile1, sbyte* xq, sbyte* xn, float* xd,
        int tokens, float* y, int yStride, CpuIsa isa)
    {
        int blocks = cols / Q8.Block;
        float* tmp = stackalloc float[4 * RowTile];
        for (int tile = tile0; tile < tile1; tile++)
        {
            sbyte* wt = quants + (long)tile * blocks * TileBlockBytes;
            ushort* st = (ushort*)(scales + (long)tile * blocks * RowTile);
            int r0 = tile * RowTile, valid = Math.Min(RowTile, rows - r0);
            int t = 0;
            if (isa >= CpuIsa.Avx2)
                for (; t + 4 <= tokens; t += 4)
                {
                    if (isa == CpuIsa.Avx512) Tile4x512(wt, st, blocks, xq + (long)t * cols, xn + (long)t * cols, xd + (long)t * blocks, cols, blocks, tmp);
                    else Tile4x256(wt, st, blocks, xq + (long)t * cols, xd + (long)t * blocks, cols, blocks, tmp);
                    for (int i = 0; i < 4; i++) Store(tmp + i * RowTile, y + (long)(t + i) * yStride + r0, valid);
                }
            for (; t < tokens; t++)
            {
                sbyte* q = xq + (long)t * cols;
                float* d = xd + (long)t * blocks;
                if (isa == CpuIsa.Avx512) Tile1x512(wt, st, blocks, q, xn + (long)t * cols, d, tmp);
                else if (isa == CpuIsa.Avx2) Tile1x256(wt, st, blocks, q, d, tmp);
                else TilePortable(wt, st, blocks, q, d, tmp);
                Store(tmp, y + (long)t * yStride + r0, valid);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* src, float* dst, int valid)
    {
        if (valid == RowTile) Buffer.MemoryCopy(src, dst, RowTile * 4, RowTile * 4);
        else for (int i = 0; i < valid; i++) dst[i] = src[i];
    }

    // ---- AVX-512: one register per 16-row group ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Bcast512(sbyte* x, int k) => Vector512.Create(((int*)x)[k]).AsSByte();

    /// <summary>acc + per-lane 4-term dot of |w| and sign(x, w), sign(x, w) = w &lt; 0 ? -x : x (|w| &lt;= 128: no saturation).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Dp512(Vector512<int> acc, Vector512<byte> absW, Vector512<sbyte> w, Vector512<sbyte> x, Vector512<sbyte> nx) =>
        Avx512F.Add(acc, Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(absW, Avx512BW.BlendVariable(x, nx, w)), Vector512.Create((short)1)));

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x512(sbyte* wt, ushort* st, int blocks, sbyte* xq, sbyte* xn, float* xd, float* result)
    {
        var f = Vector512<float>.Zero;
        for (int b = 0; b < blocks; b++)
        {
            sbyte* wb = wt + (long)b * TileBlockBytes;
            sbyte* xb = xq + b * Q8.Block, nb = xn + b * Q8.Block;
            Vector512<int> a0 = Vector512<int>.Zero, a1 = Vector512<int>.Zero;
            for (int k = 0; k < 8; k += 2)
            {
                var w0 = Vector512.Load(wb + k * 64);
                var w1 = Vector512.Load(wb + k * 64 + 64);
                a0 = Dp512(a0, Avx512BW.Abs(w0), w0, Bcast512(xb, k), Bcast512(nb, k));
                a1 = Dp512(a1, Avx512BW.Abs(w1), w1, Bcast512(xb, k + 1), Bcast512(nb, k + 1));
            }
            f = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512F.Add(a0, a1)), Avx512F.Multiply(Dot.Widen512(st + b * RowTile), Vector512.Create(xd[b])), f);
        }
        f.Store(result);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x512(sbyte* wt, ushort* st, int blocks, sbyte* xq, sbyte* xn, float* xd, long xStride, long dStride, float* result)
    {
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        for (int b = 0; b < blocks; b++)
        {
            sbyte* wb = wt + (long)b * TileBlockBytes;
            sbyte* q0 = xq + b * Q8.Block, n0 = xn + b * Q8.Block;
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int k = 0; k < 8; k++)
            {
                var w = Vector512.Load(wb + k * 64);
                var aw = Avx512BW.Abs(w).AsByte();
                a0 = Dp512(a0, aw, w, Bcast512(q0, k), Bcast512(n0, k));
                a1 = Dp512(a1, aw, w, Bcast512(q0 + xStride, k), Bcast512(n0 + xStride, k));
                a2 = Dp512(a2, aw, w, Bcast512(q0 + 2 * xStride, k), Bcast512(n0 + 2 * xStride, k));
                a3 = Dp512(a3, aw, w, Bcast512(q0 + 3 * xStride, k), Bcast512(n0 + 3 * xStride, k));
            }
            var s = Dot.Widen512(st + b * RowTile);
            f0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a0), Avx512F.Multiply(s, Vector512.Create(xd[b])), f0);
            f1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a1), Avx512F.Multiply(s, Vector512.Create(xd[dStride + b])), f1);
            f2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a2), Avx512F.Multiply(s, Vector512.Create(xd[2 * dStride + b])), f2);
            f3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(a3), Avx512F.Multiply(s, Vector512.Create(xd[3 * dStride + b])), f3);
        }
        f0.Store(result); f1.Store(result + 16); f2.Store(result + 32); f3.Store(result + 48);
    }

    // ---- AVX2: two 256-bit halves (rows 0-7, 8-15) per group ----

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> Bcast256(sbyte* x, int k) => Vector256.Create(((int*)x)[k]).AsSByte();

    /// <summary>acc + per-lane 4-term dot of |w| and sign(x, w): AVX-VNNI vpdpbusd, else maddubs + madd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Dp256(Vector256<int> acc, Vector256<byte> absW, Vector256<sbyte> w, Vector256<sbyte> x)
    {
        var sx = Avx2.Sign(x, w);
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(acc, absW, sx);
        return Avx2.Add(acc, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(absW, sx), Vector256.Create((short)1)));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile1x256(sbyte* wt, ushort* st, int blocks, sbyte* xq, float* xd, float* result)
    {
        Vector256<float> f0 = default, f1 = default;
        for (int b = 0; b < blocks; b++)
        {
            sbyte* wb = wt + (long)b * TileBlockBytes;
            sbyte* xb = xq + b * Q8.Block;
            Vector256<int> a0 = default, c0 = default;
            for (int k = 0; k < 8; k++)
            {
                var x = Bcast256(xb, k);
                var wl = Avx.LoadVector256(wb + k * 64);
                var wh = Avx.LoadVector256(wb + k * 64 + 32);
                a0 = Dp256(a0, Avx2.Abs(wl), wl, x);
                c0 = Dp256(c0, Avx2.Abs(wh), wh, x);
            }
            var xs = Vector256.Create(xd[b]);
            f0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a0), Avx.Multiply(Dot.Widen256(st + b * RowTile), xs), f0);
            f1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(c0), Avx.Multiply(Dot.Widen256(st + b * RowTile + 8), xs), f1);
        }
        Avx.Store(result, f0);
        Avx.Store(result + 8, f1);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile4x256(sbyte* wt, ushort* st, int blocks, sbyte* xq, float* xd, long xStride, long dStride, float* result)
    {
        Vector256<float> f00 = default, f01 = default, f10 = default, f11 = default, f20 = default, f21 = default, f30 = default, f31 = default;
        for (int b = 0; b < blocks; b++)
        {
            sbyte* wb = wt + (long)b * TileBlockBytes;
            sbyte* q0 = xq + b * Q8.Block;
            Vector256<int> a0 = default, c0 = default, a1 = default, c1 = default, a2 = default, c2 = default, a3 = default, c3 = default;
            for (int k = 0; k < 8; k++)
            {
                var wl = Avx.LoadVector256(wb + k * 64);
                var wh = Avx.LoadVector256(wb + k * 64 + 32);
                var al = Avx2.Abs(wl);
                var ah = Avx2.Abs(wh);
                var x = Bcast256(q0, k); a0 = Dp256(a0, al, wl, x); c0 = Dp256(c0, ah, wh, x);
                x = Bcast256(q0 + xStride, k); a1 = Dp256(a1, al, wl, x); c1 = Dp256(c1, ah, wh, x);
                x = Bcast256(q0 + 2 * xStride, k); a2 = Dp256(a2, al, wl, x); c2 = Dp256(c2, ah, wh, x);
                x = Bcast256(q0 + 3 * xStride, k); a3 = Dp256(a3, al, wl, x); c3 = Dp256(c3, ah, wh, x);
            }
            var sl = Dot.Widen256(st + b * RowTile);
            var sh = Dot.Widen256(st + b * RowTile + 8);
            var xs = Vector256.Create(xd[b]);
            f00 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a0), Avx.Multiply(sl, xs), f00);
            f01 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(c0), Avx.Multiply(sh, xs), f01);
            xs = Vector256.Create(xd[dStride + b]);
            f10 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a1), Avx.Multiply(sl, xs), f10);
            f11 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(c1), Avx.Multiply(sh, xs), f11);
            xs = Vector256.Create(xd[2 * dStride + b]);
            f20 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a2), Avx.Multiply(sl, xs), f20);
            f21 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(c2), Avx.Multiply(sh, xs), f21);
            xs = Vector256.Create(xd[3 * dStride + b]);
            f30 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(a3), Avx.Multiply(sl, xs), f30);
            f31 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(c3), Avx.Multiply(sh, xs), f31);
        }
        Avx.Store(result, f00); Avx.Store(result + 8, f01);
        Avx.Store(result + 16, f10); Avx.Store(result + 24, f11);
        Avx.Store(result + 32, f20); Avx.Store(result + 40, f21);
        Avx.Store(result + 48, f30); Avx.Store(result + 56, f31);
    }

    /// <summary>Any CPU: the same int32 block dots (Vector128 widening multiplies where accelerated) and the same fused multiply-add.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TilePortable(sbyte* wt, ushort* st, int blocks, sbyte* xq, float* xd, float* result)
    {
        int* dots = stackalloc int[RowTile];
        new Span<float>(result, RowTile).Clear();
        for (int b = 0; b < blocks; b++)
        {
            sbyte* wb = wt + (long)b * TileBlockBytes;
            sbyte* xb = xq + b * Q8.Block;
            new Span<int>(dots, RowTile).Clear();
            for (int k = 0; k < 8; k++)
            {
                sbyte* wk = wb + k * RowTile * 4;
                if (Vector128.IsHardwareAccelerated)
                {
                    // Four rows x 4 int8 per vector against the 4 activations repeated; |products| <= 128 x 127 fit in 16 bits.
                    var (xl, xh) = Vector128.Widen(Vector128.Create(((int*)xb)[k]).AsSByte());
                    for (int g = 0; g < 4; g++)
                    {
                        var (wl, wh) = Vector128.Widen(Vector128.Load(wk + g * 16));
                        var (p0, p1) = Vector128.Widen(wl * xl);
                        var (p2, p3) = Vector128.Widen(wh * xh);
                        dots[g * 4] += Vector128.Sum(p0); dots[g * 4 + 1] += Vector128.Sum(p1);
                        dots[g * 4 + 2] += Vector128.Sum(p2); dots[g * 4 + 3] += Vector128.Sum(p3);
                    }
                }
                else
                {
                    for (int r = 0; r < RowTile; r++)
                        for (int j = 0; j < 4; j++) dots[r] += wk[r * 4 + j] * xb[k * 4 + j];
                }
            }
            for (int r = 0; r < RowTile; r++)
                result[r] = MathF.FusedMultiplyAdd(dots[r], (float)BitConverter.UInt16BitsToHalf(st[b * RowTile + r]) * xd[b], result[r]);
        }
    }
}
