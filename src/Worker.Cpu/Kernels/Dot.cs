using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Worker.Cpu;

/// <summary>
/// Dot products, the inner loop of every matrix kernel. F32: 512/256-bit FMA with two accumulators (Vector128 on
/// <see cref="CpuIsa.Portable"/>). Q8: per 32-block int8 x int8 -> int32 (AVX-VNNI vpdpbusd, else maddubs + madd
/// on |w| and sign(x, w) as llama.cpp does), converted to f32 and scaled by w_scale * x_scale.
/// </summary>
internal static unsafe class Dot
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F32(float* a, float* b, int n, CpuIsa isa)
    {
        int i = 0;
        float sum = 0;
        if (isa == CpuIsa.Avx512 && n >= 16)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(a + i), Avx512F.LoadVector512(b + i), acc0);
                acc1 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(a + i + 16), Avx512F.LoadVector512(b + i + 16), acc1);
            }
            for (; i + 16 <= n; i += 16) acc0 = Avx512F.FusedMultiplyAdd(Avx512F.LoadVector512(a + i), Avx512F.LoadVector512(b + i), acc0);
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (isa >= CpuIsa.Avx2 && n >= 8)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc0);
                acc1 = Fma.MultiplyAdd(Avx.LoadVector256(a + i + 8), Avx.LoadVector256(b + i + 8), acc1);
            }
            for (; i + 8 <= n; i += 8) acc0 = Fma.MultiplyAdd(Avx.LoadVector256(a + i), Avx.LoadVector256(b + i), acc0);
            sum = Vector256.Sum(acc0 + acc1);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4) acc += Vector128.Load(a + i) * Vector128.Load(b + i);
            sum = Vector128.Sum(acc);
        }
        for (; i < n; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>Q8_0 row dot: <paramref name="blocks"/> blocks of 32 int8 weights (scales wd) against int8 activations (scales xd).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q8(sbyte* wq, float* wd, sbyte* xq, float* xd, int blocks, CpuIsa isa)
    {
        if (isa >= CpuIsa.Avx2)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            int b = 0;
            for (; b + 2 <= blocks; b += 2)
            {
                acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(BlockDot(wq + b * 32, xq + b * 32)), Vector256.Create(wd[b] * xd[b]), acc0);
                acc1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(BlockDot(wq + b * 32 + 32, xq + b * 32 + 32)), Vector256.Create(wd[b + 1] * xd[b + 1]), acc1);
            }
            if (b < blocks)
                acc0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(BlockDot(wq + b * 32, xq + b * 32)), Vector256.Create(wd[b] * xd[b]), acc0);
            return Vector256.Sum(acc0 + acc1);
        }
        float sum = 0;
        for (int b = 0; b < blocks; b++)
        {
            // Portable: the block's int32 dot via Vector128 widening (any SIMD the JIT accelerates, incl. Arm64 NEON),
            // else scalar; the int sum is exact either way, so both give the same float result.
            int s = Vector128.IsHardwareAccelerated ? BlockDot128(wq + b * 32, xq + b * 32) : BlockDotScalar(wq + b * 32, xq + b * 32);
            sum += s * (wd[b] * xd[b]);
        }
        return sum;
    }

    /// <summary>
    /// <see cref="Q8"/> for four activation rows at once (x row k at xq + k * xStride, scales at xd + k * dStride):
    /// each weight block is loaded and made absolute once for all four. Per row the operations and their order are
    /// those of <see cref="Q8"/>, so results are bit-identical whichever kernel a token lands in.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Q8x4(sbyte* wq, float* wd, sbyte* xq, float* xd, long xStride, long dStride, int blocks, float* result)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        sbyte* x0 = xq, x1 = xq + xStride, x2 = xq + 2 * xStride, x3 = xq + 3 * xStride;
        float* d0 = xd, d1 = xd + dStride, d2 = xd + 2 * dStride, d3 = xd + 3 * dStride;
        int b = 0;
        for (; b + 2 <= blocks; b += 2)
        {
            int o = b * 32;
            var w = Avx.LoadVector256(wq + o);
            var aw = Avx2.Abs(w);
            var wn = Avx.LoadVector256(wq + o + 32);
            var awn = Avx2.Abs(wn);
            float s = wd[b], sn = wd[b + 1];
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x0 + o)), Vector256.Create(s * d0[b]), a0);
            b0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(awn, wn, x0 + o + 32)), Vector256.Create(sn * d0[b + 1]), b0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x1 + o)), Vector256.Create(s * d1[b]), a1);
            b1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(awn, wn, x1 + o + 32)), Vector256.Create(sn * d1[b + 1]), b1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x2 + o)), Vector256.Create(s * d2[b]), a2);
            b2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(awn, wn, x2 + o + 32)), Vector256.Create(sn * d2[b + 1]), b2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x3 + o)), Vector256.Create(s * d3[b]), a3);
            b3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(awn, wn, x3 + o + 32)), Vector256.Create(sn * d3[b + 1]), b3);
        }
        if (b < blocks)
        {
            int o = b * 32;
            var w = Avx.LoadVector256(wq + o);
            var aw = Avx2.Abs(w);
            float s = wd[b];
            a0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x0 + o)), Vector256.Create(s * d0[b]), a0);
            a1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x1 + o)), Vector256.Create(s * d1[b]), a1);
            a2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x2 + o)), Vector256.Create(s * d2[b]), a2);
            a3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(SignedDot(aw, w, x3 + o)), Vector256.Create(s * d3[b]), a3);
        }
        result[0] = Vector256.Sum(a0 + b0);
        result[1] = Vector256.Sum(a1 + b1);
        result[2] = Vector256.Sum(a2 + b2);
        result[3] = Vector256.Sum(a3 + b3);
    }

    /// <summary>
    /// <see cref="F32"/> for four activation rows at once (row k at b + k * stride), each weight vector loaded once;
    /// per row the same operations in the same order as <see cref="F32"/> (bit-identical results).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void F32x4(float* a, float* b, long stride, int n, CpuIsa isa, float* result)
    {
        float* r0 = b, r1 = b + stride, r2 = b + 2 * stride, r3 = b + 3 * stride;
        int i = 0;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        if (isa == CpuIsa.Avx512 && n >= 16)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, c0 = default, c1 = default, c2 = default, c3 = default;
            for (; i + 32 <= n; i += 32)
            {
                var w = Avx512F.LoadVector512(a + i);
                var wn = Avx512F.LoadVector512(a + i + 16);
                a0 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r0 + i), a0);
                c0 = Avx512F.FusedMultiplyAdd(wn, Avx512F.LoadVector512(r0 + i + 16), c0);
                a1 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r1 + i), a1);
                c1 = Avx512F.FusedMultiplyAdd(wn, Avx512F.LoadVector512(r1 + i + 16), c1);
                a2 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r2 + i), a2);
                c2 = Avx512F.FusedMultiplyAdd(wn, Avx512F.LoadVector512(r2 + i + 16), c2);
                a3 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r3 + i), a3);
                c3 = Avx512F.FusedMultiplyAdd(wn, Avx512F.LoadVector512(r3 + i + 16), c3);
            }
            for (; i + 16 <= n; i += 16)
            {
                var w = Avx512F.LoadVector512(a + i);
                a0 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r0 + i), a0);
                a1 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r1 + i), a1);
                a2 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r2 + i), a2);
                a3 = Avx512F.FusedMultiplyAdd(w, Avx512F.LoadVector512(r3 + i), a3);
            }
            s0 = Vector512.Sum(a0 + c0); s1 = Vector512.Sum(a1 + c1); s2 = Vector512.Sum(a2 + c2); s3 = Vector512.Sum(a3 + c3);
        }
        else if (isa >= CpuIsa.Avx2 && n >= 8)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, c0 = default, c1 = default, c2 = default, c3 = default;
            for (; i + 16 <= n; i += 16)
            {
                var w = Avx.LoadVector256(a + i);
                var wn = Avx.LoadVector256(a + i + 8);
                a0 = Fma.MultiplyAdd(w, Avx.LoadVector256(r0 + i), a0);
                c0 = Fma.MultiplyAdd(wn, Avx.LoadVector256(r0 + i + 8), c0);
                a1 = Fma.MultiplyAdd(w, Avx.LoadVector256(r1 + i), a1);
                c1 = Fma.MultiplyAdd(wn, Avx.LoadVector256(r1 + i + 8), c1);
                a2 = Fma.MultiplyAdd(w, Avx.LoadVector256(r2 + i), a2);
                c2 = Fma.MultiplyAdd(wn, Avx.LoadVector256(r2 + i + 8), c2);
                a3 = Fma.MultiplyAdd(w, Avx.LoadVector256(r3 + i), a3);
                c3 = Fma.MultiplyAdd(wn, Avx.LoadVector256(r3 + i + 8), c3);
            }
            for (; i + 8 <= n; i += 8)
            {
                var w = Avx.LoadVector256(a + i);
                a0 = Fma.MultiplyAdd(w, Avx.LoadVector256(r0 + i), a0);
                a1 = Fma.MultiplyAdd(w, Avx.LoadVector256(r1 + i), a1);
                a2 = Fma.MultiplyAdd(w, Avx.LoadVector256(r2 + i), a2);
                a3 = Fma.MultiplyAdd(w, Avx.LoadVector256(r3 + i), a3);
            }
            s0 = Vector256.Sum(a0 + c0); s1 = Vector256.Sum(a1 + c1); s2 = Vector256.Sum(a2 + c2); s3 = Vector256.Sum(a3 + c3);
        }
        else
        {
            result[0] = F32(a, r0, n, isa); result[1] = F32(a, r1, n, isa); result[2] = F32(a, r2, n, isa); result[3] = F32(a, r3, n, isa);
            return;
        }
        for (; i < n; i++) { s0 += a[i] * r0[i]; s1 += a[i] * r1[i]; s2 += a[i] * r2[i]; s3 += a[i] * r3[i]; }
        result[0] = s0; result[1] = s1; result[2] = s2; result[3] = s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> SignedDot(Vector256<byte> absW, Vector256<sbyte> w, sbyte* x)
    {
        var sx = Avx2.Sign(Avx.LoadVector256(x), w);
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, absW, sx);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(absW, sx), Vector256.Create((short)1));
    }

    /// <summary>
    /// f16 weight row · f32 activation row with the widening fused into the loop (decode: no scratch round trip).
    /// Same accumulator layout and order as <see cref="F32"/> on the widened row, so the result is bit-identical to
    /// widening with <see cref="HalfToSingle"/> first and calling <see cref="F32"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float F16(Half* w, float* x, int n, CpuIsa isa, float* scratch)
    {
        ushort* h = (ushort*)w;
        int i = 0;
        float sum = 0;
        if (isa == CpuIsa.Avx512 && n >= 16)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i + 32 <= n; i += 32)
            {
                acc0 = Avx512F.FusedMultiplyAdd(Widen512(h + i), Avx512F.LoadVector512(x + i), acc0);
                acc1 = Avx512F.FusedMultiplyAdd(Widen512(h + i + 16), Avx512F.LoadVector512(x + i + 16), acc1);
            }
            for (; i + 16 <= n; i += 16) acc0 = Avx512F.FusedMultiplyAdd(Widen512(h + i), Avx512F.LoadVector512(x + i), acc0);
            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (isa >= CpuIsa.Avx2 && n >= 8)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Fma.MultiplyAdd(Widen256(h + i), Avx.LoadVector256(x + i), acc0);
                acc1 = Fma.MultiplyAdd(Widen256(h + i + 8), Avx.LoadVector256(x + i + 8), acc1);
            }
            for (; i + 8 <= n; i += 8) acc0 = Fma.MultiplyAdd(Widen256(h + i), Avx.LoadVector256(x + i), acc0);
            sum = Vector256.Sum(acc0 + acc1);
        }
        else
        {
            HalfToSingle(w, scratch, n, isa);
            return F32(scratch, x, n, isa);
        }
        for (; i < n; i++) sum += (float)w[i] * x[i];
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen512(ushort* h)
    {
        var v = Avx512F.ConvertToVector512Int32(Avx.LoadVector256(h));
        var mag = Avx512F.ShiftLeftLogical(Avx512F.And(v, Vector512.Create(0x7fff)), 13).AsSingle() * Vector512.Create(5.192297e33f);
        return mag | Avx512F.ShiftLeftLogical(Avx512F.And(v, Vector512.Create(0x8000)), 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen256(ushort* h)
    {
        var v = Avx2.ConvertToVector256Int32(h);
        var mag = Avx2.ShiftLeftLogical(Avx2.And(v, Vector256.Create(0x7fff)), 13).AsSingle() * Vector256.Create(5.192297e33f);
        return Avx.Or(mag, Avx2.ShiftLeftLogical(Avx2.And(v, Vector256.Create(0x8000)), 16).AsSingle());
    }

    /// <summary>
    /// Widens n f16 values to f32: bits (h &amp; 0x7fff) &lt;&lt; 13 reinterpreted as f32 and scaled by 2^112 rebias the
    /// exponent (exact for normals, subnormals and zero; inf/NaN become large finite values, which weights never hold),
    /// then the sign bit is or-ed back. 16 (AVX-512) or 8 (AVX2) values per step; scalar cast for the rest.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void HalfToSingle(Half* src, float* dst, int n, CpuIsa isa)
    {
        int i = 0;
        ushort* h = (ushort*)src;
        if (isa == CpuIsa.Avx512)
        {
            for (; i + 16 <= n; i += 16) Avx512F.Store(dst + i, Widen512(h + i));
        }
        if (isa >= CpuIsa.Avx2)
        {
            for (; i + 8 <= n; i += 8) Avx.Store(dst + i, Widen256(h + i));
        }
        if (i < n) System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(src + i, n - i), new Span<float>(dst + i, n - i));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int BlockDot128(sbyte* w, sbyte* x)
    {
        var acc = Vector128<int>.Zero;
        for (int k = 0; k < 32; k += 16)
        {
            var (wl, wh) = Vector128.Widen(Vector128.Load(w + k));
            var (xl, xh) = Vector128.Widen(Vector128.Load(x + k));
            // |w|, |x| <= 128, so each 16-bit product fits; widen to 32 bits before summing.
            var (p0, p1) = Vector128.Widen(wl * xl);
            var (p2, p3) = Vector128.Widen(wh * xh);
            acc += p0 + p1 + p2 + p3;
        }
        return Vector128.Sum(acc);
    }

    private static int BlockDotScalar(sbyte* w, sbyte* x)
    {
        int s = 0;
        for (int i = 0; i < 32; i++) s += w[i] * x[i];
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> BlockDot(sbyte* w, sbyte* x)
    {
        var wv = Avx.LoadVector256(w);
        return SignedDot(Avx2.Abs(wv), wv, x);
    }
}
