using System.Text.Json;

namespace Simulator.Traces;

/// <summary>Options for the WEKA reader.</summary>
public sealed class WekaOptions
{
    /// <summary>
    /// Merge v6 streaming/non-streaming duplicate pairs (two consecutive requests with identical prompts):
    /// null = only for files declaring <c>hash_id_scope: "global"</c> (the v6 release), true/false = always/never.
    /// </summary>
    public bool? DedupePairs { get; init; }

    /// <summary>Read only the first N session files of a folder (0: all); --max-sessions sets it, as each file is one root session.</summary>
    public int MaxFiles { get; init; }
}

/// <summary>
/// WEKA kv-cache-tester Claude Code session files (v6 and v8): one JSON object per file (optionally gzipped), or a
/// folder of them (read in ordinal file-name order). Each file is one root session; <c>subagent</c> entries are child
/// sessions.
/// <para>Time model: a <c>subagent</c> marker's <c>t</c> is where the sub-agent <em>ended</em> (in the data,
/// marker.t − duration ≈ end of the preceding parent turn), so the child starts at <c>t − duration_ms/1000</c> and
/// its nested <c>t</c> values are relative to that start. The child starts <c>start − end of previous parent turn</c>
/// seconds after that parent turn completes; the parent's next turn waits for the child to finish and then
/// <c>next.t − marker.t</c> seconds. Other turns use the recorded <c>think_time</c> (client delay before the request).</para>
/// <para>Malformed request entries are reported as <c>file:N</c> where N is the entry's 1-based position in
/// <c>requests</c> (the files are single-line JSON); an unparsable file is reported with the parser's line.</para>
/// </summary>
public static class WekaReader
{
    /// <summary>Reads a file or every *.json / *.json.gz in a folder.</summary>
    public static TraceLoadResult Read(string path, bool strict, WekaOptions options)
    {
        var result = new TraceLoadResult();
        if (Directory.Exists(path))
        {
            var files = Directory.EnumerateFiles(path)
                .Where(f => f.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".json.gz", StringComparison.OrdinalIgnoreCase))
                .ToList();
            files.Sort(StringComparer.Ordinal);
            if (options.MaxFiles > 0 && files.Count > options.MaxFiles)
            {
                files.RemoveRange(options.MaxFiles, files.Count - options.MaxFiles);
            }

            foreach (var f in files)
            {
                ReadFile(f, strict, options, result);
            }
        }
        else
        {
            ReadFile(path, strict, options, result);
        }

        return result;
    }

    private static void ReadFile(string path, bool strict, WekaOptions options, TraceLoadResult result)
    {
        string name = Path.GetFileName(path);
        JsonDocument doc;
        try
        {
            using var s = TraceReader.Open(path);
            doc = JsonDocument.Parse(s, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            result.Report(new TraceIssue(name, (int)(e.LineNumber ?? 0) + 1, "invalid JSON: " + e.Message), strict);
            return;
        }
        catch (InvalidDataException e)
        {
            result.Report(new TraceIssue(name, 0, "bad gzip: " + e.Message), strict);
            return;
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("requests", out var requests) || requests.ValueKind != JsonValueKind.Array)
            {
                result.Report(new TraceIssue(name, 1, "not a session object with a 'requests' array"), strict);
                return;
            }

            int blockSize = 64;
            if (root.TryGetProperty("block_size", out var bs) && bs.ValueKind == JsonValueKind.Number && bs.TryGetInt32(out int b) && b > 0)
            {
                blockSize = b;
            }

            bool dedupe = options.DedupePairs ?? (root.TryGetProperty("hash_id_scope", out var scope) && scope.ValueKind == JsonValueKind.String && scope.GetString() == "global");
            string session = (root.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString() : null)
                ?? StripExtensions(name);
            var ctx = new FileContext(name, blockSize, dedupe, strict, result);
            ReadSession(ctx, requests, session, parent: null, parentTurn: -1, baseTime: 0, firstThink: 0);
        }
    }

    private static string StripExtensions(string name)
    {
        if (name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase))
        {
            name = name[..^3];
        }

        return name.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? name[..^5] : name;
    }

    private sealed record FileContext(string File, int BlockSize, bool Dedupe, bool Strict, TraceLoadResult Result);

    private sealed class Turn
    {
        public required TraceRequest Request;
        public double ApiTime;
        public long[] Ids = [];
    }

    private static void ReadSession(FileContext ctx, JsonElement requests, string session, string? parent, int parentTurn, double baseTime, double firstThink)
    {
        var turns = new List<Turn>();
        var pendingChildren = new List<(JsonElement Marker, int EntryNo, int AfterTurn)>();
        double lastMarkerEnd = double.NaN; // end time of sub-agents since the last turn
        int entryNo = 0;
        HashIds? previousIds = null;
        foreach (var e in requests.EnumerateArray())
        {
            entryNo++;
            try
            {
                if (e.ValueKind != JsonValueKind.Object)
                {
                    throw new FormatException("request entry is not an object");
                }

                string? type = Json.OptionalString(e, "type");
                if (type == "subagent")
                {
                    double end = baseTime + Json.RequireDouble(e, "t");
                    if (!e.TryGetProperty("requests", out var nested) || nested.ValueKind != JsonValueKind.Array)
                    {
                        throw new FormatException("subagent entry without a 'requests' array");
                    }

                    pendingChildren.Add((e, entryNo, turns.Count - 1));
                    lastMarkerEnd = double.IsNaN(lastMarkerEnd) ? end : Math.Max(lastMarkerEnd, end);
                    continue;
                }

                double t = baseTime + Json.RequireDouble(e, "t");
                int input = Json.RequireInt(e, "in");
                int output = Json.RequireInt(e, "out");
                Validate.Lengths(input, output);
                long[] ids = Json.RequireLongArray(e, "hash_ids");
                string? stop = Json.OptionalString(e, "stop");
                double api = Json.OptionalDouble(e, "api_time", 0);
                double recordedThink = Json.OptionalDouble(e, "think_time", double.NaN);

                if (ctx.Dedupe && turns.Count > 0 && double.IsNaN(lastMarkerEnd))
                {
                    var prev = turns[^1];
                    if (prev.Request.In == input && prev.Ids.AsSpan().SequenceEqual(ids))
                    {
                        // v6 proxy duplicate: one logical request logged twice (stream + non-stream). Keep the first's
                        // arrival, take the stop/out/api_time of the one that carries a stop reason.
                        if (!string.IsNullOrEmpty(stop) || string.IsNullOrEmpty(prev.Request.Stop))
                        {
                            prev.Request.Out = output;
                            prev.Request.Stop = string.IsNullOrEmpty(stop) ? prev.Request.Stop : stop;
                            prev.ApiTime = api;
                        }

                        ctx.Result.MergedDuplicates++;
                        continue;
                    }
                }

                double think;
                if (turns.Count == 0)
                {
                    think = firstThink;
                }
                else if (!double.IsNaN(lastMarkerEnd))
                {
                    think = Math.Max(0, t - lastMarkerEnd);
                }
                else if (!double.IsNaN(recordedThink))
                {
                    think = Math.Max(0, recordedThink);
                }
                else
                {
                    var p = turns[^1];
                    think = Math.Max(0, t - (p.Request.T + p.ApiTime));
                }

                var hashIds = HashIds.Sharing(previousIds, ids);
                previousIds = hashIds;
                var req = new TraceRequest
                {
                    T = t,
                    Session = session,
                    In = input,
                    Out = output,
                    BlockSize = ctx.BlockSize,
                    HashIds = hashIds,
                    Think = think,
                    Stop = string.IsNullOrEmpty(stop) ? null : stop,
                    Parent = parent,
                    ParentTurn = parent is null ? -1 : parentTurn,
                    Source = $"{ctx.File}:{entryNo}",
                };
                turns.Add(new Turn { Request = req, ApiTime = api, Ids = ids });
                lastMarkerEnd = double.NaN;
            }
            catch (Exception ex) when (ex is FormatException or InvalidOperationException)
            {
                ctx.Result.Report(new TraceIssue(ctx.File, entryNo, $"session {session}: {ex.Message}"), ctx.Strict);
            }
        }

        foreach (var t in turns)
        {
            ctx.Result.Requests.Add(t.Request);
        }

        int childNo = 0;
        foreach (var (marker, markerEntry, afterTurn) in pendingChildren)
        {
            childNo++;
            try
            {
                double end = baseTime + Json.RequireDouble(marker, "t");
                double duration = Json.OptionalDouble(marker, "duration_ms", 0) / 1000.0;
                double start = Math.Max(baseTime, end - duration);
                double delay = 0;
                if (afterTurn >= 0)
                {
                    var p = turns[afterTurn];
                    delay = Math.Max(0, start - (p.Request.T + p.ApiTime));
                }
                else
                {
                    delay = Math.Max(0, start - baseTime);
                }

                string agent = Json.OptionalString(marker, "agent_id") ?? $"agent_{childNo:D3}";
                ReadSession(ctx, marker.GetProperty("requests"), $"{session}/{agent}", session, afterTurn, start, delay);
            }
            catch (Exception ex) when (ex is FormatException or InvalidOperationException)
            {
                ctx.Result.Report(new TraceIssue(ctx.File, markerEntry, $"session {session}: {ex.Message}"), ctx.Strict);
            }
        }
    }
}
