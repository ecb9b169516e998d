using System.Text.Json;

namespace LoadGen.Client;

/// <summary>A tenant as the load generator sees it: a label for reports and an optional API key (never reported).</summary>
public sealed record Tenant(string Name, string? ApiKey);

/// <summary>One function call an assistant turn asked for (OpenAI <c>tool_calls[i]</c>).</summary>
public sealed record ToolCall(string Id, string Name, string Arguments);

/// <summary>One chat message: plain text, an assistant turn with <see cref="ToolCalls"/>, or a <c>tool</c> result
/// answering <see cref="ToolCallId"/>.</summary>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>Function calls of an assistant message (sent as <c>tool_calls</c>), or null.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }

    /// <summary>The call a <c>tool</c> message answers (<c>tool_call_id</c>), or null.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>An assistant message carrying <paramref name="calls"/> (content null, as OpenAI sends it).</summary>
    public static ChatMessage AssistantToolCalls(IReadOnlyList<ToolCall> calls) => new("assistant", null) { ToolCalls = calls };

    /// <summary>The result of tool call <paramref name="callId"/>.</summary>
    public static ChatMessage ToolResult(string callId, string content) => new("tool", content) { ToolCallId = callId };
}

/// <summary>A function the model may call: name, description and a JSON Schema of its parameters (raw JSON).</summary>
public sealed record ToolDefinition(string Name, string Description, string ParametersSchema);

/// <summary>One streaming chat-completions request to send.</summary>
public sealed class ChatRequest
{
    /// <summary>Who sends it.</summary>
    public required Tenant Tenant { get; init; }

    /// <summary>The conversation so far, last message from the user (or a tool result).</summary>
    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    /// <summary>Tokens to generate at most (<c>max_tokens</c>).</summary>
    public int MaxTokens { get; init; } = 16;

    /// <summary>Session id sent as <c>x-session-id</c> (agent and chat sessions), or null.</summary>
    public string? SessionId { get; init; }

    /// <summary>Parent session of a sub-agent, sent as <c>x-parent-session-id</c>, or null.</summary>
    public string? ParentSessionId { get; init; }

    /// <summary>OpenAI <c>user</c> field, or null.</summary>
    public string? User { get; init; }

    /// <summary>Ask for exactly <see cref="MaxTokens"/> tokens (<c>ignore_eos</c>, honoured by vLLM-style servers).</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>Functions offered (<c>tools</c>), or null for none.</summary>
    public IReadOnlyList<ToolDefinition>? Tools { get; init; }

    /// <summary><c>tool_choice</c> (<c>"required"</c>, <c>"none"</c>, <c>"auto"</c>), or null to leave it out.</summary>
    public string? ToolChoice { get; init; }

    /// <summary>OpenAI <c>seed</c>, or null.</summary>
    public long? Seed { get; init; }

    /// <summary>What preceded this request in its session: <see cref="Gap.Tool"/> (the previous answer called tools),
    /// <see cref="Gap.Human"/> (it answered in text), or null for a session's first request. Reported, not sent.</summary>
    public string? GapBefore { get; init; }

    /// <summary>Prompt tokens of the previous request of the conversation when this one extends it (the part of this
    /// prompt a prefix cache could serve), or null. Reported, not sent.</summary>
    public int? ReusablePrefixTokens { get; init; }
}

/// <summary>Labels of <see cref="ChatRequest.GapBefore"/>.</summary>
public static class Gap
{
    /// <summary>The previous turn ended with tool calls; this request carries their results.</summary>
    public const string Tool = "tool";

    /// <summary>The previous turn ended in text; this request carries a new user message.</summary>
    public const string Human = "human";
}

/// <summary>Writes the <c>messages</c> and <c>tools</c> of a request as OpenAI JSON (one writer for the wire body and
/// for the workload recorder's rendering, so both see the same bytes).</summary>
public static class ChatJson
{
    /// <summary>Writes <c>"messages": [...]</c>.</summary>
    public static void WriteMessages(Utf8JsonWriter w, IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(w);
        ArgumentNullException.ThrowIfNull(messages);
        w.WriteStartArray("messages");
        foreach (var m in messages)
        {
            w.WriteStartObject();
            w.WriteString("role", m.Role);
            if (m.ToolCallId is not null)
            {
                w.WriteString("tool_call_id", m.ToolCallId);
            }

            w.WriteString("content", m.Content);
            if (m.ToolCalls is { Count: > 0 } calls)
            {
                w.WriteStartArray("tool_calls");
                foreach (var c in calls)
                {
                    w.WriteStartObject();
                    w.WriteString("id", c.Id);
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", c.Name);
                    w.WriteString("arguments", c.Arguments);
                    w.WriteEndObject();
                    w.WriteEndObject();
                }

                w.WriteEndArray();
            }

            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    /// <summary>Writes <c>"tools": [...]</c> when there are any.</summary>
    public static void WriteTools(Utf8JsonWriter w, IReadOnlyList<ToolDefinition>? tools)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (tools is not { Count: > 0 })
        {
            return;
        }

        w.WriteStartArray("tools");
        foreach (var t in tools)
        {
            w.WriteStartObject();
            w.WriteString("type", "function");
            w.WriteStartObject("function");
            w.WriteString("name", t.Name);
            w.WriteString("description", t.Description);
            w.WritePropertyName("parameters");
            w.WriteRawValue(t.ParametersSchema);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }
}
