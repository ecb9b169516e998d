using System.IO.Compression;
using System.Text.Json;

namespace Simulator.Traces;

/// <summary>Trace formats the simulator reads.</summary>
public enum TraceFormat
{
    /// <summary>Mooncake FAST'25 jsonl: timestamp (ms), input_length, output_length, hash_ids (512-token blocks).</summary>
    Mooncake,

    /// <summary>WEKA kv-cache-tester Claude Code sessions: one JSON object per file (.json / .json.gz), or a folder of them.</summary>
    Weka,

    /// <summary>Azure LLM inference 2023 CSV: TIMESTAMP, ContextTokens, GeneratedTokens (no hashes).</summary>
    Azure,

    /// <summary>Our canonical jsonl (see <see cref="TraceRequest"/>).</summary>
    Canonical,
}

/// <summary>Reads any supported format into canonical requests.</summary>
public static class TraceReader
{
    /// <summary>Parses a format name (case-insensitive).</summary>
    public static bool TryParseFormat(string? name, out TraceFormat format)
    {
        switch (name?.Trim().ToLowerInvariant())
        {
            case "mooncake": format = TraceFormat.Mooncake; return true;
            case "weka": format = TraceFormat.Weka; return true;
            case "azure": format = TraceFormat.Azure; return true;
            case "canonical": format = TraceFormat.Canonical; return true;
            default: format = default; return false;
        }
    }

    /// <summary>Reads <paramref name="path"/> (a file, or for WEKA also a folder).</summary>
    public static TraceLoadResult Read(string path, TraceFormat format, bool strict = false, WekaOptions? weka = null) => format switch
    {
        TraceFormat.Mooncake => MooncakeReader.Read(path, strict),
        TraceFormat.Weka => WekaReader.Read(path, strict, weka ?? new WekaOptions()),
        TraceFormat.Azure => AzureReader.Read(path, strict),
        TraceFormat.Canonical => CanonicalFormat.Read(path, strict),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    /// <summary>Opens a file for reading, transparently gunzipping *.gz.</summary>
    internal static Stream Open(string path)
    {
        var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(fs, CompressionMode.Decompress) : fs;
    }

    /// <summary>
    /// Calls <paramref name="parse"/> with each non-blank line's JSON object (and its 1-based line number); a line that is
    /// not a JSON object, or whose <paramref name="parse"/> throws a format error, is reported on <paramref name="result"/>
    /// (or throws when <paramref name="strict"/>).
    /// </summary>
    internal static void ForEachJsonObject(string path, bool strict, TraceLoadResult result, Action<JsonElement, int> parse)
    {
        string name = Path.GetFileName(path);
        foreach (var (line, text) in Lines(path))
        {
            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            try
            {
                using var doc = JsonDocument.Parse(text);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new FormatException("not a JSON object");
                }

                parse(doc.RootElement, line);
            }
            catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
            {
                result.Report(new TraceIssue(name, line, e.Message), strict);
            }
        }
    }

    /// <summary>Enumerates lines with 1-based numbers.</summary>
    internal static IEnumerable<(int Line, string Text)> Lines(string path)
    {
        using var reader = new StreamReader(Open(path));
        int n = 0;
        while (reader.ReadLine() is { } line)
        {
            n++;
            yield return (n, line);
        }
    }
}
