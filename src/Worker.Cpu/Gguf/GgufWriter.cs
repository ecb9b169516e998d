using System.Text;

namespace Worker.Cpu;

/// <summary>
/// Streaming GGUF v3 writer: metadata first, then tensor headers (offsets computed from sizes), then each tensor's
/// rows produced by a callback as f32 and converted to the tensor's type, so multi-GB files never sit in memory.
/// </summary>
public sealed class GgufWriter
{
    private readonly List<(string Key, GgufValueType Type, object Value)> _metadata = [];
    private readonly List<(string Name, long[] Dims, GgufTensorType Type, Action<long, Span<float>> FillRow)> _tensors = [];
    private const int Alignment = 32;

    public void Add(string key, string value) => _metadata.Add((key, GgufValueType.String, value));
    public void Add(string key, uint value) => _metadata.Add((key, GgufValueType.UInt32, value));
    public void Add(string key, float value) => _metadata.Add((key, GgufValueType.Float32, value));
    public void Add(string key, bool value) => _metadata.Add((key, GgufValueType.Bool, value));
    public void Add(string key, string[] value) => _metadata.Add((key, GgufValueType.Array, value));
    public void Add(string key, float[] value) => _metadata.Add((key, GgufValueType.Array, value));
    public void Add(string key, int[] value) => _metadata.Add((key, GgufValueType.Array, value));

    /// <summary>Adds a tensor of shape <paramref name="dims"/> (GGML order) whose row r is produced by <paramref name="fillRow"/>.</summary>
    public void AddTensor(string name, long[] dims, GgufTensorType type, Action<long, Span<float>> fillRow) =>
        _tensors.Add((name, dims, type, fillRow));

    public void Write(string path)
    {
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var w = new BinaryWriter(stream, Encoding.UTF8);
        w.Write(GgufFile.Magic);
        w.Write(3u);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count + 1);
        WriteString(w, "general.alignment");
        w.Write((uint)GgufValueType.UInt32);
        w.Write((uint)Alignment);
        foreach (var (key, type, value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)type);
            WriteValue(w, value);
        }
        long offset = 0;
        foreach (var (name, dims, type, _) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (var d in dims) w.Write((ulong)d);
            w.Write((uint)type);
            w.Write((ulong)offset);
            offset = Align(offset + GgufTensorTypes.RowBytes(type, dims[0]) * (dims.Aggregate(1L, (a, d) => a * d) / dims[0]));
        }
        Pad(w);
        long dataStart = stream.Position;
        foreach (var (_, dims, type, fillRow) in _tensors)
        {
            long cols = dims[0], rows = dims.Aggregate(1L, (a, d) => a * d) / cols;
            var row = new float[cols];
            var bytes = new byte[GgufTensorTypes.RowBytes(type, cols)];
            for (long r = 0; r < rows; r++)
            {
                fillRow(r, row);
                Encode(type, row, bytes);
                w.Write(bytes);
            }
            w.Flush();
            long written = stream.Position - dataStart;
            long pad = Align(written) - written;
            for (long i = 0; i < pad; i++) w.Write((byte)0);
        }
    }

    /// <summary>Encodes f32 values as <paramref name="type"/> (Q8_0 as llama.cpp's reference quantizer does).</summary>
    public static void Encode(GgufTensorType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        switch (type)
        {
            case GgufTensorType.F32:
                for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(destination[(i * 4)..], values[i]);
                break;
            case GgufTensorType.F16:
                for (int i = 0; i < values.Length; i++) BitConverter.TryWriteBytes(destination[(i * 2)..], (Half)values[i]);
                break;
            case GgufTensorType.Q8_0:
                for (int b = 0; b < values.Length / GgufTensorTypes.Q8BlockSize; b++)
                {
                    var block = destination.Slice(b * GgufTensorTypes.Q8BlockBytes, GgufTensorTypes.Q8BlockBytes);
                    var q = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(block[2..]);
                    float d = Q8.QuantizeBlock(values.Slice(b * GgufTensorTypes.Q8BlockSize, GgufTensorTypes.Q8BlockSize), q);
                    BitConverter.TryWriteBytes(block, (Half)d);
                }
                break;
            default:
                throw new NotSupportedException($"tensor type {type} is not supported");
        }
    }

    private static long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void Pad(BinaryWriter w)
    {
        long pos = w.BaseStream.Position;
        for (long i = pos; i < Align(pos); i++) w.Write((byte)0);
    }

    private static void WriteString(BinaryWriter w, string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static void WriteValue(BinaryWriter w, object value)
    {
        switch (value)
        {
            case string s: WriteString(w, s); break;
            case uint u: w.Write(u); break;
            case float f: w.Write(f); break;
            case bool b: w.Write((byte)(b ? 1 : 0)); break;
            case string[] a: w.Write((uint)GgufValueType.String); w.Write((ulong)a.Length); foreach (var s in a) WriteString(w, s); break;
            case float[] a: w.Write((uint)GgufValueType.Float32); w.Write((ulong)a.Length); foreach (var f in a) w.Write(f); break;
            case int[] a: w.Write((uint)GgufValueType.Int32); w.Write((ulong)a.Length); foreach (var i in a) w.Write(i); break;
            default: throw new NotSupportedException(value.GetType().Name);
        }
    }
}
