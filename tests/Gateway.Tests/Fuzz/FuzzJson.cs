using System.Text;

namespace Gateway.Tests.Fuzz;

/// <summary>
/// A JSON-like tree the generators build and <see cref="Render"/> writes byte by byte, so that it can hold what a
/// serializer never writes: raw bytes that are not UTF-8, lone surrogate escapes, numbers past every range, invalid
/// escapes, duplicate keys, nesting past the parser's depth limit.
/// </summary>
internal abstract record FuzzJson
{
    public byte[] Render()
    {
        var sb = new List<byte>(256);
        Write(sb);
        return [.. sb];
    }

    public abstract void Write(List<byte> o);

    /// <summary>A string: pieces written one after another between quotes (text, escapes or raw bytes).</summary>
    public sealed record Str(IReadOnlyList<byte[]> Pieces) : FuzzJson
    {
        public static Str Of(string text) => new([Escape(text)]);

        public override void Write(List<byte> o)
        {
            o.Add((byte)'"');
            foreach (var p in Pieces)
            {
                o.AddRange(p);
            }

            o.Add((byte)'"');
        }
    }

    /// <summary>A number (or anything else) written verbatim.</summary>
    public sealed record Raw(byte[] Bytes) : FuzzJson
    {
        public static Raw Of(string text) => new(Encoding.UTF8.GetBytes(text));

        public override void Write(List<byte> o) => o.AddRange(Bytes);
    }

    public sealed record Arr(IReadOnlyList<FuzzJson> Items) : FuzzJson
    {
        public override void Write(List<byte> o)
        {
            o.Add((byte)'[');
            for (int i = 0; i < Items.Count; i++)
            {
                if (i > 0)
                {
                    o.Add((byte)',');
                }

                Items[i].Write(o);
            }

            o.Add((byte)']');
        }
    }

    public sealed record Obj(IReadOnlyList<(FuzzJson Key, FuzzJson Value)> Members) : FuzzJson
    {
        public override void Write(List<byte> o)
        {
            o.Add((byte)'{');
            for (int i = 0; i < Members.Count; i++)
            {
                if (i > 0)
                {
                    o.Add((byte)',');
                }

                Members[i].Key.Write(o);
                o.Add((byte)':');
                Members[i].Value.Write(o);
            }

            o.Add((byte)'}');
        }
    }

    public static readonly FuzzJson Null = Raw.Of("null");

    public static FuzzJson Bool(bool b) => Raw.Of(b ? "true" : "false");

    public static FuzzJson Int(long v) => Raw.Of(v.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public static Obj Object(params (string Key, FuzzJson Value)[] members) =>
        new(members.Select(m => ((FuzzJson)Str.Of(m.Key), m.Value)).ToList());

    /// <summary>JSON-escapes ordinary text (quotes, backslashes, control characters).</summary>
    public static byte[] Escape(string text)
    {
        var sb = new StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case < ' ': sb.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture)); break;
                default: sb.Append(c); break;
            }
        }

        return Encoding.UTF8.GetBytes(sb.ToString());
    }
}
