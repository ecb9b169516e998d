using System.Text;

namespace Worker.Cpu;

/// <summary>One tensor's header: name, dims (GGML order: Dims[0] is the contiguous row length), type, data offset.</summary>
public sealed record GgufTensorInfo(string Name, long[] Dims, GgufTensorType Type, long Offset)
{
    public long Elements => Dims.Aggregate(1L, (a, d) => a * d);
    public long Cols => Dims[0];
    public long Rows => Elements / Dims[0];
    public long ByteSize => GgufTensorTypes.RowBytes(Type, Cols) * Rows;
}

/// <summary>
/// GGUF v2/v3 header reader (https://github.com/ggml-org/ggml/blob/master/docs/gguf.md): metadata key/values and tensor
/// infos; tensor data is read on demand with <see cref="ReadTensor"/> at <see cref="DataOffset"/> + tensor offset.
/// Rejects other versions and tensor types this backend has no kernel for, naming the tensor.
/// </summary>
public sealed class GgufFile
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian

    public string Path { get; }
    public uint Version { get; }
    public IReadOnlyDictionary<string, object> Metadata { get; }
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    public long DataOffset { get; }
    public int Alignment { get; }

    private GgufFile(string path, uint version, Dictionary<string, object> metadata, List<GgufTensorInfo> tensors, long dataOffset, int alignment)
    {
        Path = path;
        Version = version;
        Metadata = metadata;
        Tensors = tensors;
        DataOffset = dataOffset;
        Alignment = alignment;
    }

    public GgufTensorInfo Tensor(string name) =>
        Tensors.FirstOrDefault(t => t.Name == name) ?? throw new InvalidDataException($"GGUF {Path}: missing tensor '{name}'");

    public GgufTensorInfo? TryTensor(string name) => Tensors.FirstOrDefault(t => t.Name == name);

    public T Get<T>(string key) => TryGet<T>(key, out var v) ? v : throw new InvalidDataException($"GGUF {Path}: missing metadata '{key}'");

    public bool TryGet<T>(string key, out T value)
    {
        if (Metadata.TryGetValue(key, out var raw))
        {
            if (raw is T t) { value = t; return true; }
            if (typeof(T) == typeof(int) || typeof(T) == typeof(long) || typeof(T) == typeof(float) || typeof(T) == typeof(double))
            {
                value = (T)Convert.ChangeType(raw, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
                return true;
            }
            throw new InvalidDataException($"GGUF {Path}: metadata '{key}' is {raw.GetType().Name}, expected {typeof(T).Name}");
        }
        value = default!;
        return false;
    }

    /// <summary>Reads a tensor's raw bytes (GGUF layout) into <paramref name="destination"/>.</summary>
    public void ReadTensor(GgufTensorInfo tensor, Span<byte> destination)
    {
        if (destination.Length != tensor.ByteSize) throw new ArgumentException("destination size differs from tensor size");
        using var handle = File.OpenHandle(Path);
        long offset = DataOffset + tensor.Offset;
        if (offset + tensor.ByteSize > RandomAccess.GetLength(handle)) throw new InvalidDataException($"GGUF {Path}: tensor '{tensor.Name}' runs past the end of the file");
        while (!destination.IsEmpty)
        {
            int n = RandomAccess.Read(handle, destination, offset);
            if (n <= 0) throw new EndOfStreamException($"GGUF {Path}: short read in tensor '{tensor.Name}'");
            destination = destination[n..];
            offset += n;
        }
    }

    public static GgufFile Open(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        using var r = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        try
        {
            if (r.ReadUInt32() != Magic) throw new InvalidDataException($"{path} is not a GGUF file (bad magic)");
            uint version = r.ReadUInt32();
            if (version is not (2 or 3)) throw new InvalidDataException($"GGUF {path}: version {version} is not supported (2 and 3 are)");
            long tensorCount = checked((long)r.ReadUInt64());
            long kvCount = checked((long)r.ReadUInt64());
            var metadata = new Dictionary<string, object>(StringComparer.Ordinal);
            for (long i = 0; i < kvCount; i++)
            {
                string key = ReadString(r);
                metadata[key] = ReadValue(r, (GgufValueType)r.ReadUInt32());
            }
            var tensors = new List<GgufTensorInfo>((int)Math.Min(tensorCount, 1 << 16));
            for (long i = 0; i < tensorCount; i++)
            {
                string name = ReadString(r);
                uint nDims = r.ReadUInt32();
                if (nDims is 0 or > 4) throw new InvalidDataException($"GGUF {path}: tensor '{name}' has {nDims} dims");
                var dims = new long[nDims];
                for (int d = 0; d < nDims; d++) dims[d] = checked((long)r.ReadUInt64());
                uint type = r.ReadUInt32();
                if (!GgufTensorTypes.IsSupported(type))
                    throw new NotSupportedException($"GGUF {path}: tensor '{name}' has type {type}; the CPU backend supports F32 (0), F16 (1) and Q8_0 (8)");
                tensors.Add(new GgufTensorInfo(name, dims, (GgufTensorType)type, checked((long)r.ReadUInt64())));
            }
            int alignment = metadata.TryGetValue("general.alignment", out var a) ? Convert.ToInt32(a, System.Globalization.CultureInfo.InvariantCulture) : 32;
            long dataOffset = (stream.Position + alignment - 1) / alignment * alignment;
            return new GgufFile(path, version, metadata, tensors, dataOffset, alignment);
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"GGUF {path}: truncated header", e);
        }
    }

    private static string ReadString(BinaryReader r)
    {
        ulong len = r.ReadUInt64();
        if (len > 1 << 24) throw new InvalidDataException($"GGUF string of {len} bytes");
        return Encoding.UTF8.GetString(r.ReadBytes((int)len));
    }

    private static object ReadValue(BinaryReader r, GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => r.ReadByte(),
        GgufValueType.Int8 => r.ReadSByte(),
        GgufValueType.UInt16 => r.ReadUInt16(),
        GgufValueType.Int16 => r.ReadInt16(),
        GgufValueType.UInt32 => r.ReadUInt32(),
        GgufValueType.Int32 => r.ReadInt32(),
        GgufValueType.Float32 => r.ReadSingle(),
        GgufValueType.Bool => r.ReadByte() != 0,
        GgufValueType.String => ReadString(r),
        GgufValueType.UInt64 => r.ReadUInt64(),
        GgufValueType.Int64 => r.ReadInt64(),
        GgufValueType.Float64 => r.ReadDouble(),
        GgufValueType.Array => ReadArray(r),
        _ => throw new InvalidDataException($"unknown GGUF metadata value type {(uint)type}"),
    };

    private static object ReadArray(BinaryReader r)
    {
        var elemType = (GgufValueType)r.ReadUInt32();
        ulong count = r.ReadUInt64();
        if (count > 1 << 26) throw new InvalidDataException($"GGUF array of {count} elements");
        int n = (int)count;
        switch (elemType)
        {
            case GgufValueType.String: { var a = new string[n]; for (int i = 0; i < n; i++) a[i] = ReadString(r); return a; }
            case GgufValueType.Float32: { var a = new float[n]; for (int i = 0; i < n; i++) a[i] = r.ReadSingle(); return a; }
            case GgufValueType.Int32: { var a = new int[n]; for (int i = 0; i < n; i++) a[i] = r.ReadInt32(); return a; }
            default: { var a = new object[n]; for (int i = 0; i < n; i++) a[i] = ReadValue(r, elemType); return a; }
        }
    }
}

internal enum GgufValueType : uint
{
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7, String = 8, Array = 9,
    UInt64 = 10, Int64 = 11, Float64 = 12,
}
