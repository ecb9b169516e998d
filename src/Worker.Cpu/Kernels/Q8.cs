using System.Runtime.CompilerServices;
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
            return QuantizeBlock(px, pq);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static float QuantizeBlock(float* x, sbyte* q)
    {
        float amax = 0;
        for (int i = 0; i < Block; i++) amax = MathF.Max(amax, MathF.Abs(x[i]));
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        for (int i = 0; i < Block; i++) q[i] = (sbyte)MathF.Round(x[i] * id);
        return d;
    }

    /// <summary>Quantizes a row of n (multiple of 32) values: n/32 scales into d, n quants into q.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void QuantizeRow(float* x, int n, sbyte* q, float* d)
    {
        for (int b = 0; b < n / Block; b++) d[b] = QuantizeBlock(x + b * Block, q + b * Block);
    }

    public static void Dequantize(ReadOnlySpan<sbyte> q, ReadOnlySpan<float> scales, Span<float> x)
    {
        for (int i = 0; i < x.Length; i++) x[i] = q[i] * scales[i / Block];
    }
}
