using System.Runtime.InteropServices;

namespace Worker.Cpu;

/// <summary>
/// A [Rows x Cols] weight matrix in 64-byte-aligned native memory, row-major (GGUF's dims[0] = Cols is contiguous).
/// F32 and F16 keep GGUF's layout; Q8_0 is repacked at load into <see cref="Q8Gemm"/>'s row tiles (16 rows interleaved
/// per 4 columns, int8 quants, f16 scales per tile and block; rows padded to a multiple of 16).
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
    /// <summary>Q8_0: tiled int8 quants (<see cref="Q8Gemm"/>), Tiles(Rows) x 16 x Cols bytes.</summary>
    public sbyte* Quants { get; private set; }
    /// <summary>Q8_0: f16 block scales, [tile][block][16 rows].</summary>
    public Half* Scales { get; private set; }

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
                long padded = (long)Q8Gemm.Tiles(m.Rows) * Q8Gemm.RowTile * m.Cols;
                m.Quants = (sbyte*)Alloc(padded);
                m.Scales = (Half*)Alloc(padded / Q8.Block * 2);
                var raw = new byte[t.ByteSize];
                file.ReadTensor(t, raw);
                fixed (byte* src = raw) Q8Gemm.Pack(src, m.Rows, m.Cols, m.Quants, m.Scales);
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
                for (int i = 0; i < Cols; i++)
                {
                    var (q, d) = Q8Gemm.At(Quants, Scales, Cols, row, i);
                    dst[i] = q * d;
                }
                break;
        }
    }

    public float[] DequantizeRow(int row)
    {
        var r = new float[Cols];
        fixed (float* p = r) DequantizeRow(row, p);
        return r;
    }

    private static void* Alloc(long bytes) => HugePages.Alloc(bytes);

    public void Dispose()
    {
        NativeMemory.AlignedFree(F32); F32 = null;
        NativeMemory.AlignedFree(F16); F16 = null;
        NativeMemory.AlignedFree(Quants); Quants = null;
        NativeMemory.AlignedFree(Scales); Scales = null;
    }
}
