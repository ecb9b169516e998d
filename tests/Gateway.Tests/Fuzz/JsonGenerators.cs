using System.Text;
using FsCheck;
using FsCheck.Fluent;

namespace Gateway.Tests.Fuzz;

/// <summary>
/// FsCheck generators for the pieces of a request body: strings with every class of Unicode trouble, numbers at the
/// edges of every range, arbitrary JSON values (deep, wide, huge), and byte-level mutations of a rendered body.
/// </summary>
internal static class JsonGenerators
{
    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Pieces that are valid JSON string content but odd text: escapes of every kind, paired and lone surrogates.</summary>
    private static readonly byte[][] OddEscapes =
    [
        B("\\ud800"), B("\\udbff"), B("\\udc00"), B("\\udfff"), B("\\uD83D"), B("\\ud83d\\ude00"), B("\\ude00\\ud83d"),
        B("\\ud800\\ud800"), B("\\u0000"), B("\\u001f"), B("\\ufeff"), B("\\ufffe"), B("\\uffff"), B("\\u202e"),
        B("\\u200b"), B("\\\\"), B("\\\""), B("\\/"), B("\\b\\f\\n\\r\\t"), B("\\\\ud800"),
    ];

    /// <summary>Raw bytes inside a string: BOMs, overlong and surrogate encodings, stray continuation bytes, valid non-ASCII.</summary>
    private static readonly byte[][] OddBytes =
    [
        [0xEF, 0xBB, 0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xED, 0xBF, 0xBF],
        [0xF4, 0x90, 0x80, 0x80], [0xF8, 0x88, 0x80, 0x80, 0x80], [0xFF], [0xFE], [0x80], [0xBF], [0xE2, 0x82], [0xF0, 0x9F, 0x98],
        [0xF0, 0x9F, 0x98, 0x80], B("é"), B("中文"), B("e\u0301"), B("\u202e"), B("\ufeff"), B("𝕏"), [0x7F],
    ];

    /// <summary>Pieces that break the JSON grammar inside a string (raw control bytes, bad escapes).</summary>
    private static readonly byte[][] GrammarBreakers =
    [
        [0x00], [0x0A], [0x1F], B("\\x41"), B("\\u12"), B("\\uZZZZ"), B("\\"), B("\\a"), [0x09],
    ];

    private static readonly string[] Words =
    [
        "hi", "hello", "user", "assistant", "llama3-8b", "read_file", "function", "The quick brown fox", "", " ", "null",
        "{\"a\":1}", "<|user|>", "<|assistant|>\n", "[DONE]", "data: x", "\r\n\r\n", "%00", "../../etc/passwd", "DROP TABLE",
    ];

    /// <summary>Numbers at the edges: int/long limits and one past, huge and tiny doubles, negative zero, long digit runs, and a few invalid literals.</summary>
    private static readonly string[] EdgeNumbers =
    [
        "0", "-0", "1", "-1", "2", "3", "4", "5", "127", "128", "129", "255", "256", "1024", "2047", "2048", "2049", "4096",
        "65535", "65536", "65537", "2147483647", "2147483648", "-2147483648", "-2147483649", "4294967295", "4294967296",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "18446744073709551615",
        "18446744073709551616", "1e308", "1.7976931348623157e308", "1e309", "-1e309", "4.9e-324", "1e-400", "0.5", "1.5",
        "2.0", "1E2", "1e+2", "-1.0e-2", "86400000", "86400001", "1000", "1001", "0.0000001",
        new string('9', 400), "-" + new string('9', 400), "1" + new string('0', 30),
    ];

    private static readonly string[] InvalidNumbers = ["NaN", "Infinity", "-Infinity", "01", "1.", ".5", "+1", "0x10", "1e", "--1"];

    /// <summary>String content: plain words two times in three, otherwise pieces with Unicode trouble or a long run.</summary>
    public static Gen<FuzzJson.Str> Str() => Gen.Frequency(
        (2, Gen.Sized(size =>
            from count in Gen.Choose(0, Math.Max(1, size / 8))
            from words in Gen.ListOf(Gen.Elements(Words), count)
            select FuzzJson.Str.Of(string.Concat(words)))),
        (1, Gen.Sized(size =>
            from count in Gen.Choose(1, Math.Max(1, size / 8))
            from pieces in Gen.ListOf(Piece(), count)
            select new FuzzJson.Str(pieces.ToList()))));

    private static Gen<byte[]> Piece() => Gen.Frequency(
        (12, Gen.Elements(Words).Select(FuzzJson.Escape)),
        (4, Gen.Elements(OddEscapes)),
        (4, Gen.Elements(OddBytes)),
        (1, Gen.Elements(GrammarBreakers)),
        (1, Gen.Sized(size => from n in Gen.Choose(1, 64 * (size + 1)) from c in Gen.Elements('a', 'é', '中', ' ') select FuzzJson.Escape(new string(c, n)))));

    /// <summary>A plain, valid string from the vocabulary (keys, model names).</summary>
    public static Gen<FuzzJson> Word() => Gen.Elements(Words).Select(w => (FuzzJson)FuzzJson.Str.Of(w));

    public static Gen<FuzzJson> Number() => Gen.Frequency(
        (6, Gen.Elements(EdgeNumbers).Select(n => (FuzzJson)FuzzJson.Raw.Of(n))),
        (3, Gen.Choose(-1000, 1000).Select(i => FuzzJson.Int(i))),
        (1, Gen.Elements(InvalidNumbers).Select(n => (FuzzJson)FuzzJson.Raw.Of(n))));

    /// <summary>A small count (1..64) most of the time, an edge number otherwise: for max_tokens, n, dimensions, ttl.</summary>
    public static Gen<FuzzJson> Count(int typical) => Gen.Frequency(
        (6, Gen.Choose(1, typical).Select(i => FuzzJson.Int(i))),
        (3, Number()),
        (1, Any()));

    /// <summary>Any JSON value, nesting shrinking with depth; sometimes a nest deeper than any parser limit.</summary>
    public static Gen<FuzzJson> Any() => Gen.Sized(size => Any(Math.Min(4, 1 + size / 20)));

    private static Gen<FuzzJson> Any(int depth)
    {
        var leaf = Gen.Frequency(
            (4, Str().Select(s => (FuzzJson)s)),
            (3, Number()),
            (1, Gen.Elements(true, false).Select(FuzzJson.Bool)),
            (1, Gen.Constant(FuzzJson.Null)));
        if (depth <= 0)
        {
            return leaf;
        }

        return Gen.Frequency(
            (6, leaf),
            (2, from n in Gen.Choose(0, 4) from items in Gen.ListOf(Any(depth - 1), n) select (FuzzJson)new FuzzJson.Arr(items.ToList())),
            (2, from n in Gen.Choose(0, 4) from keys in Gen.ListOf(Str(), n) from values in Gen.ListOf(Any(depth - 1), n)
                select (FuzzJson)new FuzzJson.Obj(keys.Zip(values, (k, v) => ((FuzzJson)k, v)).ToList())),
            (1, Deep()));
    }

    /// <summary>Arrays or objects nested 1..300 deep (the parsers stop at 64).</summary>
    public static Gen<FuzzJson> Deep() =>
        from depth in Gen.Frequency((3, Gen.Choose(1, 70)), (1, Gen.Choose(60, 300)))
        from asObject in Gen.Elements(false, true)
        select (FuzzJson)new FuzzJson.Raw(Nest(depth, asObject));

    private static byte[] Nest(int depth, bool asObject)
    {
        var sb = new StringBuilder(depth * 6);
        for (int i = 0; i < depth; i++)
        {
            sb.Append(asObject ? "{\"a\":" : "[");
        }

        sb.Append('1');
        for (int i = 0; i < depth; i++)
        {
            sb.Append(asObject ? '}' : ']');
        }

        return B(sb.ToString());
    }

    /// <summary>
    /// Byte-level damage to a rendered body: truncation, a flipped or inserted byte, a deleted or doubled span, a
    /// leading BOM, trailing garbage.
    /// </summary>
    public static Gen<byte[]> Mutate(byte[] body)
    {
        int len = body.Length;
        var pos = Gen.Choose(0, Math.Max(0, len - 1));
        var anyByte = Gen.Choose(0, 255).Select(b => (byte)b);
        return Gen.Frequency(
            (3, pos.Select(p => body[..p])),
            (3, from p in pos from b in anyByte select len == 0 ? [b] : Replace(body, p, b)),
            (3, from p in pos from piece in Gen.Elements(OddBytes.Concat(GrammarBreakers).Concat(OddEscapes).ToArray()) select Insert(body, p, piece)),
            (2, from p in pos from n in Gen.Choose(1, 16) select Delete(body, p, n)),
            (1, from p in pos from n in Gen.Choose(1, 64) select Insert(body, p, body[p..Math.Min(len, p + n)])),
            (1, Gen.Constant<byte[]>([0xEF, 0xBB, 0xBF, .. body])),
            (1, Gen.Elements(B("}"), B("]"), B(",{}"), B("\u0000"), B(" x"), B("{}")).Select(tail => (byte[])[.. body, .. tail])));
    }

    private static byte[] Replace(byte[] body, int p, byte b)
    {
        var copy = (byte[])body.Clone();
        copy[p] = b;
        return copy;
    }

    private static byte[] Insert(byte[] body, int p, byte[] piece) => [.. body.AsSpan(0, p), .. piece, .. body.AsSpan(p)];

    private static byte[] Delete(byte[] body, int p, int n) => [.. body.AsSpan(0, p), .. body.AsSpan(Math.Min(body.Length, p + n))];
}
