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
            int s = 0;
            sbyte* w = wq + b * 32, x = xq + b * 32;
            for (int i = 0; i < 32; i++) s += w[i] * x[i];
            sum += s * (wd[b] * xd[b]);
        }
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> BlockDot(sbyte* w, sbyte* x)
    {
        var wv = Avx.LoadVector256(w);
        var xv = Avx.LoadVector256(x);
        var aw = Avx2.Abs(wv);
        var sx = Avx2.Sign(xv, wv);
        if (AvxVnni.IsSupported) return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, aw, sx);
        return Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(aw, sx), Vector256.Create((short)1));
    }
}
