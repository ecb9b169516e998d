using System.Text;
using System.Text.Json;
using Llm.Prompt.OpenAi;

namespace Worker.Generation;

/// <summary>
/// Decides, deterministically, whether a chat turn is a tool call, so agent loops (call → tool result → call … →
/// answer) can be exercised end to end against the reference worker:
/// <list type="bullet">
/// <item>no <c>tools</c>, or <c>tool_choice: "none"</c> → a text answer;</item>
/// <item><c>tool_choice: "required"</c> → a tool call (the function picked from the tools by the request seed);
///   a named function → a call of that function;</item>
/// <item><c>"auto"</c> (the default): text once the conversation holds <see cref="MaxToolResults"/> tool results
///   (<c>--max-tool-results</c>); else last message from the <c>user</c> → a tool call; last message a <c>tool</c>
///   result → a tool call unless the seeded draw falls under <see cref="StopAfterToolProbability"/> (30%); any other
///   last role → text.</item>
/// </list>
/// Arguments are a JSON object with a value for every property of the function's <c>parameters</c> schema
/// (string → a few words or an enum member, integer/number, boolean, array → one item, object → {}).
/// </summary>
internal static class ToolCallRule
{
    /// <summary>Chance (by seeded hash) that a turn after a tool result is the final answer.</summary>
    public const double StopAfterToolProbability = 0.3;

    /// <summary>After this many tool results in the conversation, "auto" always answers in text (the default of <c>--max-tool-results</c>).</summary>
    public const int MaxToolResults = 8;

    private static readonly string[] ArgWords = ["alpha", "beta", "gamma", "delta", "paris", "tokyo", "blue", "green", "fast", "report", "index", "notes"];

    /// <summary>What the request's body says about tools (parsed once more, only when it has tools).</summary>
    /// <param name="Schemas">Parameters schema of each function.</param>
    /// <param name="ToolResults">Tool-result messages in the conversation.</param>
    /// <param name="LastTurnRole">Role of the last message that is not a system message (clients such as Claude Code end a turn with a system reminder).</param>
    public sealed record ToolContext(IReadOnlyDictionary<string, JsonElement?> Schemas, int ToolResults, string? LastTurnRole = null);

    /// <summary>Validates tool_choice against tools; null when fine.</summary>
    public static OpenAiError? Validate(OpenAiRequest request)
    {
        string? choice = request.ToolChoice;
        if (choice is null || choice is "none" or "auto")
        {
            return null;
        }

        if (request.ToolNames.Count == 0)
        {
            return OpenAiError.Invalid("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice");
        }

        if (choice != "required" && !request.ToolNames.Contains(choice))
        {
            return OpenAiError.Invalid($"Invalid value for 'tool_choice': no function named '{Trim(choice)}' is in 'tools'.", "tool_choice");
        }

        return null;
    }

    /// <summary>Reads tool schemas and the number of tool-result messages from the body.</summary>
    public static ToolContext ReadContext(ReadOnlyMemory<byte> body)
    {
        var schemas = new Dictionary<string, JsonElement?>(StringComparer.Ordinal);
        int toolResults = 0;
        string? lastTurnRole = null;
        using var doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = OpenAiRequestParser.MaxDepth });
        var root = doc.RootElement;
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array)
        {
            foreach (var t in tools.EnumerateArray())
            {
                var f = t.GetProperty("function");
                string name = f.GetProperty("name").GetString()!;
                schemas.TryAdd(name, f.TryGetProperty("parameters", out var p) && p.ValueKind == JsonValueKind.Object ? p.Clone() : null);
            }
        }

        if (root.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in messages.EnumerateArray())
            {
                if (m.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String)
                {
                    toolResults += r.ValueEquals("tool"u8) ? 1 : 0;
                    lastTurnRole = r.ValueEquals("system"u8) || r.ValueEquals("developer"u8) ? lastTurnRole : r.GetString();
                }
            }
        }

        return new ToolContext(schemas, toolResults, lastTurnRole);
    }

    /// <summary>The function to call this turn, or null for a text turn.</summary>
    /// <param name="request">The parsed request.</param>
    /// <param name="toolResults">Tool results in the conversation.</param>
    /// <param name="seed">Request seed.</param>
    /// <param name="maxToolResults">Tool results after which the answer is text.</param>
    /// <param name="lastTurnRole">Role of the last non-system message (default: the last message's role).</param>
    public static string? Decide(OpenAiRequest request, int toolResults, ulong seed, int maxToolResults = MaxToolResults, string? lastTurnRole = null)
    {
        if (request.ToolNames.Count == 0)
        {
            return null;
        }

        string choice = request.ToolChoice ?? "auto";
        if (choice == "none")
        {
            return null;
        }

        var rng = new DeterministicRandom(seed ^ 0x7001UL);
        string picked = request.ToolNames[rng.Next(request.ToolNames.Count)];
        if (choice == "required")
        {
            return picked;
        }

        if (choice != "auto")
        {
            return choice;
        }

        if (toolResults >= maxToolResults)
        {
            return null; // whatever the last message (an Anthropic client's tool results arrive with text beside them)
        }

        switch (lastTurnRole ?? request.LastRole)
        {
            case "user":
                return picked;
            case "tool" or "function":
                if (rng.NextDouble() < StopAfterToolProbability)
                {
                    return null;
                }

                return picked;
            default:
                return null;
        }
    }

    /// <summary>Deterministic JSON arguments for <paramref name="schema"/> (a JSON Schema object, or null).</summary>
    public static string Arguments(JsonElement? schema, ulong seed)
    {
        var rng = new DeterministicRandom(seed ^ 0xA5A5UL);
        using var ms = new MemoryStream(128);
        using (var w = new Utf8JsonWriter(ms, Http.HttpJson.WriterOptions))
        {
            w.WriteStartObject();
            if (schema is { } s && s.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object)
            {
                foreach (var p in props.EnumerateObject())
                {
                    w.WritePropertyName(p.Name);
                    WriteValue(w, p.Value, ref rng, depth: 0);
                }
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
    }

    private static void WriteValue(Utf8JsonWriter w, JsonElement schema, ref DeterministicRandom rng, int depth)
    {
        if (schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("enum", out var en) && en.ValueKind == JsonValueKind.Array && en.GetArrayLength() > 0)
        {
            en[rng.Next(en.GetArrayLength())].WriteTo(w);
            return;
        }

        string type = "string";
        if (schema.ValueKind == JsonValueKind.Object && schema.TryGetProperty("type", out var t))
        {
            if (t.ValueKind == JsonValueKind.String)
            {
                type = t.GetString()!;
            }
            else if (t.ValueKind == JsonValueKind.Array && t.GetArrayLength() > 0 && t[0].ValueKind == JsonValueKind.String)
            {
                type = t[0].GetString()!;
            }
        }

        switch (type)
        {
            case "integer":
                w.WriteNumberValue(1 + rng.Next(100));
                break;
            case "number":
                w.WriteNumberValue(Math.Round(rng.NextDouble() * 100, 2));
                break;
            case "boolean":
                w.WriteBooleanValue(rng.Next(2) == 1);
                break;
            case "null":
                w.WriteNullValue();
                break;
            case "array":
                w.WriteStartArray();
                if (depth < 4 && schema.TryGetProperty("items", out var items))
                {
                    WriteValue(w, items, ref rng, depth + 1);
                }
                else
                {
                    w.WriteStringValue(ArgWords[rng.Next(ArgWords.Length)]);
                }

                w.WriteEndArray();
                break;
            case "object":
                w.WriteStartObject();
                if (depth < 4 && schema.TryGetProperty("properties", out var props) && props.ValueKind == JsonValueKind.Object)
                {
                    foreach (var p in props.EnumerateObject())
                    {
                        w.WritePropertyName(p.Name);
                        WriteValue(w, p.Value, ref rng, depth + 1);
                    }
                }

                w.WriteEndObject();
                break;
            default:
                int n = 1 + rng.Next(3);
                var sb = new StringBuilder();
                for (int i = 0; i < n; i++)
                {
                    if (i > 0)
                    {
                        sb.Append(' ');
                    }

                    sb.Append(ArgWords[rng.Next(ArgWords.Length)]);
                }

                w.WriteStringValue(sb.ToString());
                break;
        }
    }

    private static string Trim(string s) => s.Length <= 64 ? s : s[..64] + "…";
}
