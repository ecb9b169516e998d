using System.IO.Compression;
using System.Text.Json;

namespace LoadGen.Scenarios;

/// <summary>One request of a WEKA agentic-coding trace (kv-cache-tester format, 64-token blocks).</summary>
public sealed record WekaRequest(double T, int In, int Out, long[] HashIds, double ThinkTime, string Stop);

/// <summary>A sub-agent: its own requests (times relative to its start) launched at <see cref="Start"/>.</summary>
public sealed record WekaSubagent(double Start, IReadOnlyList<WekaRequest> Requests);

/// <summary>One Claude Code session from <c>/work/shared/traces/weka_agentic_coding_v8</c>.</summary>
public sealed record WekaTrace(string Id, int BlockSize, int SharedPrefixTokens, IReadOnlyList<WekaRequest> Requests, IReadOnlyList<WekaSubagent> Subagents)
{
    /// <summary>Reads a <c>trace_NNNN.json.gz</c> (or plain <c>.json</c>) file.</summary>
    public static WekaTrace Load(string path)
    {
        using Stream file = File.OpenRead(path);
        using Stream stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionMode.Decompress) : file;
        using var doc = JsonDocument.Parse(stream);
        var root = doc.RootElement;
        string id = root.TryGetProperty("id", out var idEl) ? idEl.ToString() : Path.GetFileName(path);
        int blockSize = root.TryGetProperty("block_size", out var bs) && bs.TryGetInt32(out int b) ? b : 64;
        int shared = Int(root, "tool_tokens") + Int(root, "system_tokens");
        var requests = new List<WekaRequest>();
        var subagents = new List<WekaSubagent>();
        if (root.TryGetProperty("requests", out var reqs) && reqs.ValueKind == JsonValueKind.Array)
        {
            foreach (var r in reqs.EnumerateArray())
            {
                string type = r.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
                if (type == "subagent")
                {
                    double end = Num(r, "t");
                    double duration = Num(r, "duration_ms") / 1000.0;
                    var nested = new List<WekaRequest>();
                    if (r.TryGetProperty("requests", out var inner) && inner.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var q in inner.EnumerateArray())
                        {
                            nested.Add(Read(q));
                        }
                    }

                    // The marker's t is where the parent resumes; the sub-agent ran for duration_ms before it.
                    subagents.Add(new WekaSubagent(Math.Max(0, end - duration), nested));
                }
                else
                {
                    requests.Add(Read(r));
                }
            }
        }

        return new WekaTrace(id, blockSize, shared, requests, subagents);
    }

    private static WekaRequest Read(JsonElement r)
    {
        long[] ids = [];
        if (r.TryGetProperty("hash_ids", out var h) && h.ValueKind == JsonValueKind.Array)
        {
            ids = new long[h.GetArrayLength()];
            int i = 0;
            foreach (var x in h.EnumerateArray())
            {
                ids[i++] = x.GetInt64();
            }
        }

        return new WekaRequest(Num(r, "t"), Int(r, "in"), Int(r, "out"), ids, Num(r, "think_time"),
            r.TryGetProperty("stop", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() ?? "" : "");
    }

    private static int Int(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? (int)v.GetDouble() : 0;

    private static double Num(JsonElement e, string name) => e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
}
