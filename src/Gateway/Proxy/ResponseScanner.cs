using System.Text.Json;

namespace Gateway.Proxy;

/// <summary>
/// Reads what the gateway needs out of an OpenAI response object (a full JSON answer or one SSE chunk) with a
/// forward-only <see cref="Utf8JsonReader"/>: usage (prompt, cached, completion tokens), finish_reason, tool-call
/// names, and whether the chunk is the usage-only one (<c>"choices":[]</c> plus usage). Allocates only for tool names
/// and unusual finish reasons.
/// </summary>
internal static class ResponseScanner
{
    /// <summary>Scans <paramref name="json"/> into <paramref name="ctx"/>; returns true when it is a usage-only chunk.</summary>
    public static bool Scan(ReadOnlySpan<byte> json, GatewayRequestContext ctx)
    {
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
        bool choicesEmpty = false;
        bool hasUsage = false;
        int usageDepth = -1;
        int detailsDepth = -1;
        int toolCallsDepth = -1;
        int functionDepth = -1;
        try
        {
            while (reader.Read())
            {
                int depth = reader.CurrentDepth;
                switch (reader.TokenType)
                {
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        if (depth == usageDepth) { usageDepth = -1; }
                        if (depth == detailsDepth) { detailsDepth = -1; }
                        if (depth == toolCallsDepth) { toolCallsDepth = -1; }
                        if (depth == functionDepth) { functionDepth = -1; }
                        continue;
                    case JsonTokenType.PropertyName:
                        break;
                    default:
                        continue;
                }

                if (depth == 1 && reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        int d = reader.CurrentDepth;
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.EndArray && reader.CurrentDepth == d)
                        {
                            choicesEmpty = true;
                        }
                        else if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
                        {
                            // descend normally: nothing to skip
                        }
                    }

                    continue;
                }

                if (depth == 1 && reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        usageDepth = reader.CurrentDepth;
                        hasUsage = true;
                        ctx.UsageSeen = true;
                    }

                    continue;
                }

                if (usageDepth >= 0)
                {
                    if (depth == usageDepth + 1 && reader.ValueTextEquals("prompt_tokens"u8))
                    {
                        ctx.PromptTokens = ReadInt(ref reader);
                    }
                    else if (depth == usageDepth + 1 && reader.ValueTextEquals("completion_tokens"u8))
                    {
                        ctx.CompletionTokens = ReadInt(ref reader);
                    }
                    else if (depth == usageDepth + 1 && reader.ValueTextEquals("prompt_tokens_details"u8))
                    {
                        reader.Read();
                        if (reader.TokenType == JsonTokenType.StartObject)
                        {
                            detailsDepth = reader.CurrentDepth;
                        }
                    }
                    else if (detailsDepth >= 0 && depth == detailsDepth + 1 && reader.ValueTextEquals("cached_tokens"u8))
                    {
                        ctx.CachedTokens = ReadInt(ref reader);
                    }

                    continue;
                }

                if (reader.ValueTextEquals("finish_reason"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        ctx.FinishReason = reader.ValueTextEquals("stop"u8) ? "stop"
                            : reader.ValueTextEquals("length"u8) ? "length"
                            : reader.ValueTextEquals("tool_calls"u8) ? "tool_calls"
                            : reader.GetString();
                    }

                    continue;
                }

                if (reader.ValueTextEquals("tool_calls"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        toolCallsDepth = reader.CurrentDepth;
                    }

                    continue;
                }

                if (toolCallsDepth >= 0 && reader.ValueTextEquals("function"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        functionDepth = reader.CurrentDepth;
                    }

                    continue;
                }

                if (functionDepth >= 0 && depth == functionDepth + 1 && reader.ValueTextEquals("name"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        ctx.AddToolCall(reader.GetString()!);
                    }
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not JSON we understand (or a string that is not text, which GetString refuses): pass it through uninspected.
            return false;
        }

        return choicesEmpty && hasUsage;
    }

    private static int ReadInt(ref Utf8JsonReader reader)
    {
        reader.Read();
        return reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int v) ? v : 0;
    }
}
