using System.Text;
using System.Text.Json;

namespace Simulator.Traces;

/// <summary>
/// Our canonical jsonl, one request per line:
/// <c>{"t": s, "tenant": "org/team/key"|null, "session": id|null, "in": n, "out": n, "block_size": n,
/// "hash_ids": [..], "think": s, "stop": "tool_use"|"end_turn"|null, "tool": name|null}</c>, plus
/// <c>"parent"</c> and <c>"parent_turn"</c> on sub-agent sessions. Turns of a session are in file order.
/// Required: t, in, out. A line without hash_ids gets unique synthetic ids (no sharing), like the Azure reader.
/// </summary>
public static class CanonicalFormat
{
    /// <summary>Reads canonical jsonl; malformed lines are skipped and reported (or throw when strict).</summary>
    public static TraceLoadResult Read(string path, bool strict)
    {
        var result = new TraceLoadResult();
        string name = Path.GetFileName(path);
        var lastIdsBySession = new Dictionary<string, HashIds>(StringComparer.Ordinal);
        TraceReader.ForEachJsonObject(path, strict, result, (o, line) =>
        {
            double t = Json.RequireDouble(o, "t");
            int input = Json.RequireInt(o, "in");
            int output = Json.RequireInt(o, "out");
            Validate.Lengths(input, output);
            int blockSize = o.TryGetProperty("block_size", out var bsEl) && bsEl.ValueKind != JsonValueKind.Null ? Json.RequireInt(o, "block_size") : 16;
            if (blockSize <= 0)
            {
                throw new FormatException("block_size must be positive");
            }

            double think = Json.OptionalDouble(o, "think", 0);
            if (t < 0 || think < 0)
            {
                throw new FormatException("t and think must not be negative");
            }

            string? session = Json.OptionalString(o, "session");
            long[] ids;
            if (o.TryGetProperty("hash_ids", out var idsEl) && idsEl.ValueKind != JsonValueKind.Null)
            {
                if (idsEl.ValueKind != JsonValueKind.Array)
                {
                    throw new FormatException("'hash_ids' is not an array");
                }

                ids = Json.LongArray(idsEl, "hash_ids");
            }
            else
            {
                int blocks = (input + blockSize - 1) / blockSize;
                ids = new long[blocks];
                for (int b = 0; b < blocks; b++)
                {
                    ids[b] = -(((long)line << 24) | (long)b) - 1; // negative: never collides with trace ids
                }
            }

            HashIds hashIds;
            if (session is not null)
            {
                lastIdsBySession.TryGetValue(session, out var prev);
                hashIds = HashIds.Sharing(prev, ids);
                lastIdsBySession[session] = hashIds;
            }
            else
            {
                hashIds = HashIds.Of(ids);
            }

            int parentTurn = o.TryGetProperty("parent_turn", out var pt) && pt.ValueKind != JsonValueKind.Null ? Json.RequireInt(o, "parent_turn") : -1;
            result.Requests.Add(new TraceRequest
            {
                T = t,
                Tenant = Json.OptionalString(o, "tenant"),
                Session = session,
                In = input,
                Out = output,
                BlockSize = blockSize,
                HashIds = hashIds,
                Think = think,
                Stop = Json.OptionalString(o, "stop"),
                Tool = Json.OptionalString(o, "tool"),
                Parent = Json.OptionalString(o, "parent"),
                ParentTurn = parentTurn,
                Source = $"{name}:{line}",
            });
        });

        return result;
    }

    /// <summary>Writes requests as canonical jsonl (invariant numbers, fixed field order, "\n" line ends).</summary>
    public static void Write(IEnumerable<TraceRequest> requests, Stream output)
    {
        var options = new JsonWriterOptions { Indented = false, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var buffer = new MemoryStream();
        long[] scratch = [];
        foreach (var r in requests)
        {
            buffer.SetLength(0);
            using (var w = new Utf8JsonWriter(buffer, options))
            {
                w.WriteStartObject();
                w.WriteNumber("t", Math.Round(r.T, 6));
                WriteStringOrNull(w, "tenant", r.Tenant);
                WriteStringOrNull(w, "session", r.Session);
                w.WriteNumber("in", r.In);
                w.WriteNumber("out", r.Out);
                w.WriteNumber("block_size", r.BlockSize);
                w.WriteStartArray("hash_ids");
                if (scratch.Length < r.HashIds.Count)
                {
                    scratch = new long[r.HashIds.Count];
                }

                r.HashIds.CopyTo(scratch);
                for (int i = 0; i < r.HashIds.Count; i++)
                {
                    w.WriteNumberValue(scratch[i]);
                }

                w.WriteEndArray();
                w.WriteNumber("think", Math.Round(r.Think, 6));
                WriteStringOrNull(w, "stop", r.Stop);
                WriteStringOrNull(w, "tool", r.Tool);
                if (r.Parent is not null)
                {
                    w.WriteString("parent", r.Parent);
                    w.WriteNumber("parent_turn", r.ParentTurn);
                }

                w.WriteEndObject();
            }

            buffer.WriteByte((byte)'\n');
            buffer.Position = 0;
            buffer.CopyTo(output);
        }
    }

    /// <summary>Writes to a file path.</summary>
    public static void Write(IEnumerable<TraceRequest> requests, string path)
    {
        using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        Write(requests, fs);
    }

    private static void WriteStringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value is null)
        {
            w.WriteNull(name);
        }
        else
        {
            w.WriteString(name, value);
        }
    }

    /// <summary>UTF-8 without BOM (for tests).</summary>
    internal static readonly Encoding Utf8 = new UTF8Encoding(false);
}
