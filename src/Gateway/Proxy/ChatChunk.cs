using System.Text.Json;

namespace Gateway.Proxy;

/// <summary>
/// What the API translators (Anthropic Messages, OpenAI Responses) read from one streamed OpenAI chat completion chunk:
/// an error object, the usage, and the first choice's text delta, tool-call deltas and finish reason.
/// </summary>
internal readonly struct ChatChunk
{
    /// <summary>The chunk is an OpenAI error object (<c>{"error":{...}}</c>).</summary>
    public bool IsError { get; private init; }

    /// <summary>The error's message (a generic one when the worker sent none).</summary>
    public string ErrorMessage { get; private init; }

    /// <summary>The error's code, when the worker sent one.</summary>
    public string? ErrorCode { get; private init; }

    /// <summary>The <c>usage</c> object; <see cref="JsonValueKind.Undefined"/> when absent.</summary>
    public JsonElement Usage { get; private init; }

    /// <summary>The first choice's non-empty text delta.</summary>
    public string? Text { get; private init; }

    /// <summary>The first choice's <c>tool_calls</c> deltas; <see cref="JsonValueKind.Undefined"/> when absent.</summary>
    public JsonElement ToolCalls { get; private init; }

    /// <summary>The first choice's finish reason, once the worker sends it.</summary>
    public string? FinishReason { get; private init; }

    /// <summary>Reads <paramref name="root"/>, a chunk's JSON object.</summary>
    public static ChatChunk Read(JsonElement root)
    {
        if (root.TryGetProperty("error", out var error))
        {
            bool obj = error.ValueKind == JsonValueKind.Object;
            return new ChatChunk
            {
                IsError = true,
                ErrorMessage = obj && error.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String ? m.GetString()! : "The stream failed.",
                ErrorCode = obj && error.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null,
            };
        }

        var usage = root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object ? u : default;
        if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0)
        {
            return new ChatChunk { ErrorMessage = "", Usage = usage };
        }

        var choice = choices[0];
        string? text = null;
        JsonElement calls = default;
        if (choice.TryGetProperty("delta", out var delta) && delta.ValueKind == JsonValueKind.Object)
        {
            if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() is { Length: > 0 } t)
            {
                text = t;
            }

            if (delta.TryGetProperty("tool_calls", out var tc) && tc.ValueKind == JsonValueKind.Array)
            {
                calls = tc;
            }
        }

        return new ChatChunk
        {
            ErrorMessage = "",
            Usage = usage,
            Text = text,
            ToolCalls = calls,
            FinishReason = choice.TryGetProperty("finish_reason", out var fr) && fr.ValueKind == JsonValueKind.String ? fr.GetString() : null,
        };
    }
}
