using System.Globalization;
using System.Text;
using System.Text.Json;
using Llm.Prompt.Hashing;
using Llm.Prompt.OpenAi;
using Llm.Prompt.Tokenization;
using LoadGen.Client;
using LoadGen.Metrics;

namespace LoadGen.Reporting;

/// <summary>
/// Writes what a live run actually sent as the simulator's canonical jsonl (<c>src/Simulator/Traces/CanonicalFormat.cs</c>),
/// so the same workload can be replayed through the simulator and its prediction set beside the live figures
/// (<c>--record-workload FILE</c>). Per request: <c>t</c> = send time from the run start, <c>tenant</c>, <c>session</c>
/// (closed-loop sessions: the next turn is sent <c>think</c> seconds after the previous one completed), <c>in</c> = prompt
/// tokens and <c>hash_ids</c> = the chained block hashes of the prompt exactly as the gateway computes them (chat
/// template rendering, default tokenizer, 16-token blocks, one salt), <c>out</c> = the completion tokens the server
/// reported (max_tokens when none), <c>stop</c> = <c>tool_use</c> when the answer called tools (<c>tool</c> = their
/// names) or <c>end_turn</c> for a text answer, so the simulator's retention planners see the same tool gaps. Thread-safe; memory is the hash ids only (one long per 16 prompt tokens).
/// </summary>
public sealed class WorkloadRecorder
{
    /// <summary>Block size of the recorded hash ids (the gateway's and the reference worker's default).</summary>
    public const int BlockSize = 16;

    private readonly Lock _lock = new();
    private readonly List<Entry> _entries = [];

    /// <summary>Requests recorded so far.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    /// <summary>Records one finished request (called once per request, whatever its outcome).</summary>
    public void Add(ChatRequest request, RequestResult result)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(result);
        var (tokens, hashes) = Blocks(request.Messages, request.Tools);
        int output = result.OutputTokens > 0 ? result.OutputTokens : request.MaxTokens;
        // How the turn ended, as the gateway classifies it: tool calls → "tool_use" (labelled by the sorted distinct
        // names, '+'-joined), a complete text answer → "end_turn"; an error → neither.
        string? stop = result.ToolCalls.Count > 0 ? "tool_use" : result.Outcome == Outcome.Ok ? "end_turn" : null;
        string? tool = result.ToolCalls.Count > 0
            ? string.Join('+', result.ToolCalls.Select(c => c.Name).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
            : null;
        var e = new Entry(result.StartSeconds, result.StartSeconds + result.E2eMs / 1000.0, result.Tenant, request.SessionId, tokens, output, hashes, stop, tool);
        lock (_lock)
        {
            _entries.Add(e);
        }
    }

    /// <summary>Prompt tokens and chained block hashes of <paramref name="messages"/> (and <paramref name="tools"/>) as the gateway sees them.</summary>
    public static (int Tokens, ulong[] Hashes) Blocks(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition>? tools = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            ChatJson.WriteMessages(w, messages);
            ChatJson.WriteTools(w, tools);
            w.WriteEndObject();
        }

        using var doc = JsonDocument.Parse(buffer.ToArray());
        var root = doc.RootElement;
        string prompt = PromptRenderer.RenderChat(root.GetProperty("messages"), root.TryGetProperty("tools", out var t) ? t : default);
        var tokens = new List<int>(prompt.Length / 3 + 16);
        DefaultTokenizer.Instance.Encode(prompt, tokens);
        return (tokens.Count, BlockHasher.ComputeChain(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(tokens), 0, BlockSize));
    }

    /// <summary>Writes the canonical jsonl, requests in send order (a session's turns are sequential, so in turn order).</summary>
    public void Write(string path)
    {
        List<Entry> entries;
        lock (_lock)
        {
            entries = [.. _entries];
        }

        entries.Sort(static (a, b) => a.Start.CompareTo(b.Start));
        var lastEnd = new Dictionary<string, double>(StringComparer.Ordinal);
        using var file = new StreamWriter(path, false, new UTF8Encoding(false));
        var sb = new StringBuilder(256);
        foreach (var e in entries)
        {
            double think = 0;
            if (e.Session is not null && lastEnd.TryGetValue(e.Session, out double end))
            {
                think = Math.Max(0, e.Start - end);
            }

            if (e.Session is not null)
            {
                lastEnd[e.Session] = e.End;
            }

            sb.Clear();
            var inv = CultureInfo.InvariantCulture;
            sb.Append("{\"t\":").Append(e.Start.ToString("0.######", inv))
              .Append(",\"tenant\":").Append(JsonSerializer.Serialize(e.Tenant))
              .Append(",\"session\":").Append(e.Session is null ? "null" : JsonSerializer.Serialize(e.Session))
              .Append(",\"in\":").Append(e.Tokens.ToString(inv))
              .Append(",\"out\":").Append(e.Output.ToString(inv))
              .Append(",\"block_size\":").Append(BlockSize.ToString(inv))
              .Append(",\"think\":").Append(think.ToString("0.######", inv))
              .Append(",\"stop\":").Append(e.Stop is null ? "null" : JsonSerializer.Serialize(e.Stop))
              .Append(",\"tool\":").Append(e.Tool is null ? "null" : JsonSerializer.Serialize(e.Tool))
              .Append(",\"hash_ids\":[");
            for (int i = 0; i < e.Hashes.Length; i++)
            {
                if (i > 0)
                {
                    sb.Append(',');
                }

                // Positive 63-bit ids: the canonical reader keeps negative ids for synthetic, never-shared blocks.
                sb.Append((e.Hashes[i] & long.MaxValue).ToString(inv));
            }

            sb.Append("]}");
            file.WriteLine(sb.ToString());
        }
    }

    private sealed record Entry(double Start, double End, string Tenant, string? Session, int Tokens, int Output, ulong[] Hashes, string? Stop, string? Tool);

}
