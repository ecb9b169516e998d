namespace Worker.Cpu;

/// <summary>GGUF tensor element types this backend reads and writes (values are GGML's type ids).</summary>
public enum GgufTensorType
{
    F32 = 0,
    F16 = 1,
    /// <summary>Blocks of 32 weights: one f16 scale then 32 int8 quants (34 bytes), value = scale * q.</summary>
    Q8_0 = 8,
}

/// <summary>Byte sizes of the supported tensor types.</summary>
public static class GgufTensorTypes
{
    public const int Q8BlockSize = 32;
    public const int Q8BlockBytes = 2 + Q8BlockSize;

    public static bool IsSupported(uint type) => type is 0 or 1 or 8;

    /// <summary>Bytes of one row of <paramref name="cols"/> elements.</summary>
    public static long RowBytes(GgufTensorType type, long cols) => type switch
    {
        GgufTensorType.F32 => cols * 4,
        GgufTensorType.F16 => cols * 2,
        GgufTensorType.Q8_0 => cols % Q8BlockSize == 0
            ? cols / Q8BlockSize * Q8BlockBytes
            : throw new InvalidDataException($"Q8_0 rows must be a multiple of {Q8BlockSize} elements, got {cols}"),
        _ => throw new NotSupportedException($"tensor type {type} is not supported"),
    };
}
