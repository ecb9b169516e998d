using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Worker.Cpu;

/// <summary>Q8_0 quantization: per block of 32 values, scale d = max|x| / 127 and q = round(x / d) in [-127, 127].</summary>
public static unsafe class Q8
{
    public const int Block = GgufTensorTypes.Q8BlockSize;

    /// <summary>Quantizes one block of 32 values into <paramref name="q"/>; returns the scale.</summary>
    public static float QuantizeBlock(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        fixed (float* px = x)
        fixed (sbyte* pq = q)
            {
            sbyte* nq = stackalloc sbyte[Block];
            return QuantizeBlock(px, pq, nq);
        }
    }

    /// <summary>
    /// One block: quants into <paramref name="q"/>, their negation into <paramref name="nq"/> (for <see cref="Q8Gemm"/>'s
    /// AVX-512 sign blend), the scale returned. Vector256 and scalar paths give identical results (same amax, same
    /// round-half-to-even).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float QuantizeBlock(float* x, sbyte* q, sbyte* nq)
    {
        if (Vector256.IsHardwareAccelerated)
        {
            var v0 = Vector256.Load(x); var v1 = Vector256.Load(x + 8); var v2 = Vector256.Load(x + 16); var v3 = Vector256.Load(x + 24);
            float amaxV = MaxLanes(Vector256.Max(Vector256.Max(Vector256.Abs(v0), Vector256.Abs(v1)), Vector256.Max(Vector256.Abs(v2), Vector256.Abs(v3))));
            float dv = amaxV / 127f;
            var idv = Vector256.Create(dv != 0 ? 1f / dv : 0f);
            var i0 = Vector256.ConvertToInt32(Vector256.Round(v0 * idv));
            var i1 = Vector256.ConvertToInt32(Vector256.Round(v1 * idv));
            var i2 = Vector256.ConvertToInt32(Vector256.Round(v2 * idv));
            var i3 = Vector256.ConvertToInt32(Vector256.Round(v3 * idv));
            var packed = Vector256.Narrow(Vector256.Narrow(i0, i1), Vector256.Narrow(i2, i3));
            packed.Store(q);
            (-packed).Store(nq);
            return dv;
        }
        float amax = 0;
        for (int i = 0; i < Block; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        for (int i = 0; i < Block; i++)
        {
            q[i] = (sbyte)MathF.Round(x[i] * id);
            nq[i] = (sbyte)-q[i];
        }
        return d;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxLanes(Vector256<float> v)
    {
        var h = Vector128.Max(v.GetLower(), v.GetUpper());
        h = Vector128.Max(h, Vector128.Shuffle(h, Vector128.Create(2, 3, 0, 1)));
        return MathF.Max(h.GetElement(0), h.GetElement(1));
    }

    /// <summary>Quantizes a row of n (multiple of 32) values: n/32 scales into d, n quants into q, their negation into nq.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeRow(float* x, int n, sbyte* q, float* d, sbyte* nq)
    {
        for (int b = 0; b < n / Block; b++) d[b] = QuantizeBlock(x + b * Block, q + b * Block, nq + b * Block);
    }

    public static void Dequantize(ReadOnlySpan<sbyte> q, ReadOnlySpan<float> scales, Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = q[i] * scales[i / Block];
    }
}
