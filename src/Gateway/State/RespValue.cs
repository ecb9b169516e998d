using System.Globalization;
using System.Text;

namespace Gateway.State;

/// <summary>RESP2 reply kinds.</summary>
public enum RespKind
{
    /// <summary><c>+OK</c>.</summary>
    SimpleString,

    /// <summary><c>-ERR ...</c>.</summary>
    Error,

    /// <summary><c>:42</c>.</summary>
    Integer,

    /// <summary><c>$3\r\nfoo</c>.</summary>
    BulkString,

    /// <summary><c>*2\r\n...</c>.</summary>
    Array,

    /// <summary><c>$-1</c> or <c>*-1</c>.</summary>
    Null,
}

/// <summary>One RESP2 reply. Immutable.</summary>
public sealed class RespValue
{
    private static readonly RespValue NullValue = new(RespKind.Null, null, 0, null);

    private RespValue(RespKind kind, string? text, long integer, IReadOnlyList<RespValue>? items)
    {
        Kind = kind;
        Text = text;
        Integer = integer;
        Items = items;
    }

    /// <summary>Reply kind.</summary>
    public RespKind Kind { get; }

    /// <summary>Text of a simple string, error or bulk string.</summary>
    public string? Text { get; }

    /// <summary>Value of an integer reply.</summary>
    public long Integer { get; }

    /// <summary>Elements of an array reply.</summary>
    public IReadOnlyList<RespValue>? Items { get; }

    /// <summary>True for <c>$-1</c>/<c>*-1</c>.</summary>
    public bool IsNull => Kind == RespKind.Null;

    internal static RespValue Null => NullValue;

    internal static RespValue Simple(string s) => new(RespKind.SimpleString, s, 0, null);

    internal static RespValue Err(string s) => new(RespKind.Error, s, 0, null);

    internal static RespValue Int(long v) => new(RespKind.Integer, null, v, null);

    internal static RespValue Bulk(string s) => new(RespKind.BulkString, s, 0, null);

    internal static RespValue Arr(IReadOnlyList<RespValue> items) => new(RespKind.Array, null, 0, items);

    /// <summary>The reply as a double (integer, or a string holding a number); 0 for null.</summary>
    public double AsDouble() => Kind switch
    {
        RespKind.Integer => Integer,
        RespKind.Null => 0,
        RespKind.BulkString or RespKind.SimpleString => double.Parse(Text!, NumberStyles.Float, CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"reply is {Kind}, not a number"),
    };

    /// <summary>The reply as an integer.</summary>
    public long AsInt64() => Kind switch
    {
        RespKind.Integer => Integer,
        RespKind.Null => 0,
        RespKind.BulkString or RespKind.SimpleString => long.Parse(Text!, NumberStyles.Integer, CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"reply is {Kind}, not an integer"),
    };

    /// <inheritdoc />
    public override string ToString() => Kind switch
    {
        RespKind.Array => "[" + string.Join(", ", Items!) + "]",
        RespKind.Integer => Integer.ToString(CultureInfo.InvariantCulture),
        RespKind.Null => "(nil)",
        RespKind.Error => "(error) " + Text,
        _ => Text ?? string.Empty,
    };

    /// <summary>Encodes a command as a RESP array of bulk strings.</summary>
    internal static void WriteCommand(ArrayBufferWriter buffer, IReadOnlyList<string> args)
    {
        buffer.WriteAscii("*");
        buffer.WriteAscii(args.Count.ToString(CultureInfo.InvariantCulture));
        buffer.WriteAscii("\r\n");
        foreach (var a in args)
        {
            var len = Encoding.UTF8.GetByteCount(a);
            buffer.WriteAscii("$");
            buffer.WriteAscii(len.ToString(CultureInfo.InvariantCulture));
            buffer.WriteAscii("\r\n");
            buffer.WriteUtf8(a, len);
            buffer.WriteAscii("\r\n");
        }
    }
}

/// <summary>A growable byte buffer for command encoding.</summary>
internal sealed class ArrayBufferWriter
{
    private byte[] _buffer = new byte[4096];

    public int Length { get; private set; }

    public ReadOnlyMemory<byte> Written => _buffer.AsMemory(0, Length);

    public void Clear() => Length = 0;

    public void WriteAscii(string s)
    {
        Ensure(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            _buffer[Length++] = (byte)s[i];
        }
    }

    public void WriteUtf8(string s, int byteCount)
    {
        Ensure(byteCount);
        Length += Encoding.UTF8.GetBytes(s, _buffer.AsSpan(Length));
    }

    private void Ensure(int more)
    {
        if (Length + more > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(_buffer.Length * 2, Length + more));
        }
    }
}
