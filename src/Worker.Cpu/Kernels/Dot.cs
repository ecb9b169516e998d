using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Worker.Cpu;

/// <summary>
/// Dot products, the inner loop of the F32/F16 matrix kernels: 512/256-bit FMA with two accumulators (Vector128 on
/// <see cref="CpuIsa.Portable"/>); f16 widened in registers. Q8_0 has its own tiled kernels (<see cref="Q8Gemm"/>).
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
    internal static Vector512<float> Widen512(ushort* h)
    {
        var v = Avx512F.ConvertToVector512Int32(Avx.LoadVector256(h));
        var mag = Avx512F.ShiftLeftLogical(Avx512F.And(v, Vector512.Create(0x7fff)), 13).AsSingle() * Vector512.Create(5.192297e33f);
        return mag | Avx512F.ShiftLeftLogical(Avx512F.And(v, Vector512.Create(0x8000)), 16).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Widen256(ushort* h)
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
}
