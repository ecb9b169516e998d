using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace Worker.Cpu;

/// <summary>The element-wise parts of a Llama block: RMSNorm, RoPE (llama.cpp's "normal" mode), SwiGLU, residual add.</summary>
internal static unsafe class Ops
{
    /// <summary>y = x / sqrt(mean(x^2) + eps) * w.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RmsNorm(float* x, float* w, float* y, int n, float eps)
    {
        var xs = new ReadOnlySpan<float>(x, n);
        float scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(xs) / n + eps);
        TensorPrimitives.Multiply(xs, scale, new Span<float>(y, n));
        TensorPrimitives.Multiply(new ReadOnlySpan<float>(y, n), new ReadOnlySpan<float>(w, n), new Span<float>(y, n));
    }

    /// <summary>
    /// cos/sin of pos * theta^(-2i/headDim) for every position and pair, built as llama.cpp's ggml_rope_cache_init does
    /// (float theta multiplied by theta_scale once per pair), so the same GGUF rotates identically in both.
    /// </summary>
    public static float[] RopeTable(int maxContext, int headDim, float ropeTheta)
    {
        int half = headDim / 2;
        var table = new float[(long)maxContext * half * 2];
        float thetaScale = MathF.Pow(ropeTheta, -2f / headDim);
        for (int p = 0; p < maxContext; p++)
        {
            float theta = p;
            for (int i = 0; i < half; i++)
            {
                table[((long)p * half + i) * 2] = MathF.Cos(theta);
                table[((long)p * half + i) * 2 + 1] = MathF.Sin(theta);
                theta *= thetaScale;
            }
        }
        return table;
    }

    /// <summary>Rotates adjacent pairs (x[2i], x[2i+1]) of each of <paramref name="heads"/> heads (LLAMA_ROPE_TYPE_NORM).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Rope(float* x, int heads, int headDim, float* cosSin)
    {
        for (int h = 0; h < heads; h++)
        {
            float* v = x + h * headDim;
            for (int i = 0; i < headDim / 2; i++)
            {
                float c = cosSin[2 * i], s = cosSin[2 * i + 1];
                float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * c - x1 * s;
                v[2 * i + 1] = x0 * s + x1 * c;
            }
        }
    }

    /// <summary>g = silu(g) * u = g * sigmoid(g) * u, in place in g.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void SwiGlu(float* g, float* u, int n)
    {
        var gs = new Span<float>(g, n);
        var tmp = new Span<float>(u, n); // u is consumed: u = sigmoid(g) * u, then g = g * u
        for (int i = 0; i < n; i++) tmp[i] = tmp[i] / (1f + MathF.Exp(-gs[i]));
        TensorPrimitives.Multiply(gs, tmp, gs);
    }

    public static void Add(float* x, float* y, int n) =>
        TensorPrimitives.Add(new ReadOnlySpan<float>(x, n), new ReadOnlySpan<float>(y, n), new Span<float>(x, n));
}
