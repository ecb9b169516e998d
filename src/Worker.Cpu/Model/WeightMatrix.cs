using System.Runtime.InteropServices;

namespace Worker.Cpu;

/// <summary>
/// A [Rows x Cols] weight matrix in 64-byte-aligned native memory, row-major (GGUF's dims[0] = Cols is contiguous).
/// F32 and F16 keep GGUF's layout; Q8_0 is repacked at load into contiguous int8 quants (Rows*Cols) plus f32 scales
/// (Rows*Cols/32), so each 32-quant block is one aligned 256-bit load and no f16 conversion sits in the dot loop.
/// </summary>
internal sealed unsafe class WeightMatrix : IDisposable
{
    public GgufTensorType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    /// <summary>Bytes of this matrix in the GGUF file (what a decode step streams for it).</summary>
    public long FileBytes { get; }
    public float* F32 { get; private set; }
    public Half* F16 { get; private set; }
    public sbyte* Quants { get; private set; }
    public float* Scales { get; private set; }

    private WeightMatrix(GgufTensorType type, int rows, int cols, long fileBytes)
    {
        Type = type;
        Rows = rows;
        Cols = cols;
        FileBytes = fileBytes;
    }

    public static WeightMatrix Load(GgufFile file, GgufTensorInfo t)
    {
        if (t.Dims.Length > 2) throw new InvalidDataException($"tensor '{t.Name}' has {t.Dims.Length} dims; expected 1 or 2");
        var m = new WeightMatrix(t.Type, checked((int)t.Rows), checked((int)t.Cols), t.ByteSize);
        long n = (long)m.Rows * m.Cols;
        switch (t.Type)
        {
            case GgufTensorType.F32:
                m.F32 = (float*)Alloc(n * 4);
                file.ReadTensor(t, new Span<byte>(m.F32, checked((int)(n * 4))));
                break;
            case GgufTensorType.F16:
                m.F16 = (Half*)Alloc(n * 2);
                file.ReadTensor(t, new Span<byte>(m.F16, checked((int)(n * 2))));
                break;
            case GgufTensorType.Q8_0:
                m.Quants = (sbyte*)Alloc(n);
                m.Scales = (float*)Alloc(n / Q8.Block * 4);
                var raw = new byte[t.ByteSize];
                file.ReadTensor(t, raw);
                fixed (byte* src = raw)
                {
                    for (long b = 0; b < n / Q8.Block; b++)
                    {
                        byte* block = src + b * GgufTensorTypes.Q8BlockBytes;
                        m.Scales[b] = (float)*(Half*)block;
                        Buffer.MemoryCopy(block + 2, m.Quants + b * Q8.Block, Q8.Block, Q8.Block);
                    }
                }
                break;
        }
        return m;
    }

    /// <summary>Row <paramref name="row"/> as f32 into <paramref name="dst"/> (embedding lookup, reference code).</summary>
    public void DequantizeRow(int row, float* dst)
    {
        long off = (long)row * Cols;
        switch (Type)
        {
            case GgufTensorType.F32: Buffer.MemoryCopy(F32 + off, dst, Cols * 4L, Cols * 4L); break;
            case GgufTensorType.F16: System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(F16 + off, Cols), new Span<float>(dst, Cols)); break;
            default:
                for (int i = 0; i < Cols; i++) dst[i] = Quants[off + i] * Scales[(off + i) / Q8.Block];
                break;
        }
    }

    public float[] DequantizeRow(int row)
    {
        var r = new float[Cols];
        fixed (float* p = r) DequantizeRow(row, p);
        return r;
    }

    private static void* Alloc(long bytes) => NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);

    public void Dispose()
    {
        NativeMemory.AlignedFree(F32); F32 = null;
        NativeMemory.AlignedFree(F16); F16 = null;
        NativeMemory.AlignedFree(Quants); Quants = null;
        NativeMemory.AlignedFree(Scales); Scales = null;
    }
}
