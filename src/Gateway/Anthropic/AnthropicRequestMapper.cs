using System.Text.Json;
using Llm.Prompt.OpenAi;

namespace Gateway.Anthropic;

/// <summary>
/// Anthropic Messages request → chat completions request (the one mapping of this direction):
/// <c>system</c> (string or text blocks) → a system message; user <c>text</c>/<c>image</c> blocks → content parts;
/// <c>tool_result</c> blocks → <c>tool</c> messages (placed before the user's other blocks, right after the assistant's
/// tool calls); assistant <c>text</c> → content, <c>tool_use</c> → <c>tool_calls</c> (input as JSON arguments),
/// <c>thinking</c> blocks dropped; <c>tools</c> → function tools; <c>tool_choice</c> auto/any/tool/none → auto/required/
/// named function/none; <c>stop_sequences</c> → <c>stop</c>; <c>metadata.user_id</c> → <c>user</c>; a stream always asks
/// for usage. <c>cache_control</c> marks are dropped (the gateway's routing and the workers' prefix caches need none).
/// Problems come back as 400 errors naming the field.
/// </summary>
public static partial class AnthropicRequestMapper
{
    /// <summary>Translates <paramref name="body"/>. <paramref name="requireMaxTokens"/> is false for count_tokens.</summary>
    public static bool TryMap(ReadOnlyMemory<byte> body, bool requireMaxTokens, out byte[] chatBody, out OpenAiError? error) =>
        TryMap(body, requireMaxTokens, out chatBody, out _, out error);

    /// <summary>Translates <paramref name="body"/> and returns the model it names.</summary>
    public static bool TryMap(ReadOnlyMemory<byte> body, bool requireMaxTokens, out byte[] chatBody, out string model, out OpenAiError? error)
    {
        chatBody = [];
        model = "";
        if (!OpenAiRequestParser.TryParseDocument(body, out var doc, out error))
        {
            return false;
        }

        using (doc)
        {
            try
            {
                chatBody = Map(doc!.RootElement, requireMaxTokens);
                model = doc.RootElement.GetProperty("model").GetString()!;
                error = null;
                return true;
            }
            catch (MappingException ex)
            {
                error = OpenAiError.Invalid(ex.Message, ex.Field);
                return false;
            }
        }
    }

    private static byte[] Map(JsonElement root, bool requireMaxTokens)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new MappingException("Request body must be a JSON object.", null);
        }

        using var ms = new MemoryStream(1024);
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("model", RequiredString(root, "model"));
            if (root.TryGetProperty("max_tokens", out var mt) && mt.ValueKind != JsonValueKind.Null)
            {
                if (mt.ValueKind != JsonValueKind.Number || !mt.TryGetInt32(out int maxTokens) || maxTokens < 1)
                {
                    throw new MappingException("max_tokens: must be a positive integer.", "max_tokens");
                }

                w.WriteNumber("max_tokens", maxTokens);
            }
            else if (requireMaxTokens)
            {
                throw new MappingException("max_tokens: Field required.", "max_tokens");
            }

            w.WriteStartArray("messages");
            WriteSystem(w, root);
            WriteMessages(w, root);
            w.WriteEndArray();
            bool stream = root.TryGetProperty("stream", out var st) && st.ValueKind == JsonValueKind.True;
            if (st.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.True or JsonValueKind.False or JsonValueKind.Null))
            {
                throw new MappingException("stream: must be a boolean.", "stream");
            }

            if (stream)
            {
                w.WriteBoolean("stream", true);
                w.WriteStartObject("stream_options");
                w.WriteBoolean("include_usage", true);
                w.WriteEndObject();
            }

            CopyNumber(w, root, "temperature");
            CopyNumber(w, root, "top_p");
            WriteStop(w, root);
            WriteTools(w, root);
            if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind == JsonValueKind.Object
                && meta.TryGetProperty("user_id", out var uid) && uid.ValueKind == JsonValueKind.String)
            {
                w.WriteString("user", uid.GetString());
            }

            w.WriteEndObject();
        }

        return ms.ToArray();
    }

    private static void WriteSystem(Utf8JsonWriter w, JsonElement root)
    {
        if (!root.TryGetProperty("system", out var system) || system.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        string text = system.ValueKind switch
        {
            JsonValueKind.String => system.GetString()!,
            JsonValueKind.Array => JoinText(system, "system"),
            _ => throw new MappingException("system: must be a string or an array of text blocks.", "system"),
        };
        w.WriteStartObject();
        w.WriteString("role", "system");
        w.WriteString("content", text);
        w.WriteEndObject();
    }

    private static void WriteMessages(Utf8JsonWriter w, JsonElement root)
    {
        if (!root.TryGetProperty("messages", out var messages))
        {
            throw new MappingException("messages: Field required.", "messages");
        }

        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
        {
            throw new MappingException("messages: must be a non-empty array.", "messages");
        }

        int i = 0;
        foreach (var m in messages.EnumerateArray())
        {
            string at = $"messages.{i}";
            if (m.ValueKind != JsonValueKind.Object)
            {
                throw new MappingException($"{at}: must be an object.", at);
            }

            string role = RequiredString(m, "role", at + ".role");
            if (!m.TryGetProperty("content", out var content))
            {
                throw new MappingException($"{at}.content: Field required.", at + ".content");
            }

            switch (role)
            {
                case "user":
                    WriteUser(w, content, at);
                    break;
                case "assistant":
                    WriteAssistant(w, content, at);
                    break;
                case "system":
                    w.WriteStartObject();
                    w.WriteString("role", "system");
                    w.WriteString("content", content.ValueKind switch
                    {
                        JsonValueKind.String => content.GetString(),
                        JsonValueKind.Array => JoinText(content, at + ".content"),
                        _ => throw new MappingException($"{at}.content: must be a string or an array of text blocks.", at + ".content"),
                    });
                    w.WriteEndObject();
                    break;
                default:
                    throw new MappingException($"{at}.role: Input should be 'user', 'assistant' or 'system'.", at + ".role");
            }

            i++;
        }
    }

    private static void WriteUser(Utf8JsonWriter w, JsonElement content, string at)
    {
        if (content.ValueKind == JsonValueKind.String)
        {
            w.WriteStartObject();
            w.WriteString("role", "user");
            w.WriteString("content", content.GetString());
            w.WriteEndObject();
            return;
        }

        var blocks = Blocks(content, at);
        foreach (var b in blocks)
        {
            if (BlockType(b) != "tool_result")
            {
                continue;
            }

            w.WriteStartObject();
            w.WriteString("role", "tool");
            w.WriteString("tool_call_id", RequiredString(b, "tool_use_id", at + ".content.tool_use_id"));
            string result = b.TryGetProperty("content", out var rc) ? rc.ValueKind switch
            {
                JsonValueKind.String => rc.GetString()!,
                JsonValueKind.Array => JoinText(rc, at + ".content"),
                JsonValueKind.Null => "",
                _ => throw new MappingException($"{at}.content.content: must be a string or an array of blocks.", at + ".content"),
            } : "";
            if (b.TryGetProperty("is_error", out var err) && err.ValueKind == JsonValueKind.True)
            {
                result = "Error: " + result;
            }

            w.WriteString("content", result);
            w.WriteEndObject();
        }

        bool any = false;
        foreach (var b in blocks)
        {
            string type = BlockType(b);
            if (type is "tool_result" or "thinking" or "redacted_thinking")
            {
                continue;
            }

            if (!any)
            {
                w.WriteStartObject();
                w.WriteString("role", "user");
                w.WriteStartArray("content");
                any = true;
            }

            WritePart(w, b, type, at);
        }

        if (any)
        {
            w.WriteEndArray();
            w.WriteEndObject();
        }
    }

    private static void WritePart(Utf8JsonWriter w, JsonElement b, string type, string at)
    {
        w.WriteStartObject();
        switch (type)
        {
            case "text":
                w.WriteString("type", "text");
                w.WriteString("text", RequiredString(b, "text", at + ".content.text"));
                break;
            case "image":
                if (!b.TryGetProperty("source", out var src) || src.ValueKind != JsonValueKind.Object)
                {
                    throw new MappingException($"{at}.content.source: Field required.", at + ".content.source");
                }

                string url = OptionalString(src, "type") switch
                {
                    "base64" => $"data:{RequiredString(src, "media_type", at + ".content.source.media_type")};base64,{RequiredString(src, "data", at + ".content.source.data")}",
                    "url" => RequiredString(src, "url", at + ".content.source.url"),
                    _ => throw new MappingException($"{at}.content.source.type: Input should be 'base64' or 'url'.", at + ".content.source.type"),
                };
                w.WriteString("type", "image_url");
                w.WriteStartObject("image_url");
                w.WriteString("url", url);
                w.WriteEndObject();
                break;
            case "document":
                throw new MappingException($"{at}.content: 'document' blocks are not supported by this gateway.", at + ".content");
            default:
                throw new MappingException($"{at}.content: unknown content block type '{Trim(type)}'.", at + ".content");
        }

        w.WriteEndObject();
    }

    private static void WriteAssistant(Utf8JsonWriter w, JsonElement content, string at)
    {
        w.WriteStartObject();
        w.WriteString("role", "assistant");
        if (content.ValueKind == JsonValueKind.String)
        {
            w.WriteString("content", content.GetString());
            w.WriteEndObject();
            return;
        }

        var blocks = Blocks(content, at);
        var text = new System.Text.StringBuilder();
        bool anyCall = false;
        foreach (var b in blocks)
        {
            string type = BlockType(b);
            if (type == "text")
            {
                text.Append(RequiredString(b, "text", at + ".content.text"));
            }
            else if (type == "tool_use")
            {
                anyCall = true;
            }
            else if (type is not ("thinking" or "redacted_thinking"))
            {
                throw new MappingException($"{at}.content: block type '{Trim(type)}' is not allowed in an assistant message.", at + ".content");
            }
        }

        if (text.Length > 0 || !anyCall)
        {
            w.WriteString("content", text.ToString());
        }
        else
        {
            w.WriteNull("content");
        }

        if (anyCall)
        {
            w.WriteStartArray("tool_calls");
            foreach (var b in blocks)
            {
                if (BlockType(b) != "tool_use")
                {
                    continue;
                }

                w.WriteStartObject();
                w.WriteString("id", RequiredString(b, "id", at + ".content.id"));
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", RequiredString(b, "name", at + ".content.name"));
                w.WriteString("arguments", b.TryGetProperty("input", out var input) && input.ValueKind == JsonValueKind.Object ? input.GetRawText() : "{}");
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
    }

    private static List<JsonElement> Blocks(JsonElement content, string at)
    {
        if (content.ValueKind != JsonValueKind.Array)
        {
            throw new MappingException($"{at}.content: must be a string or an array of content blocks.", at + ".content");
        }

        var list = new List<JsonElement>(content.GetArrayLength());
        foreach (var b in content.EnumerateArray())
        {
            if (b.ValueKind != JsonValueKind.Object || OptionalString(b, "type") is null)
            {
                throw new MappingException($"{at}.content: every block must be an object with a 'type'.", at + ".content");
            }

            list.Add(b);
        }

        return list;
    }

    private static string BlockType(JsonElement b) => b.GetProperty("type").GetString()!;

    private static string JoinText(JsonElement blocks, string at)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var b in blocks.EnumerateArray())
        {
            if (b.ValueKind != JsonValueKind.Object || OptionalString(b, "type") is not { } type)
            {
                throw new MappingException($"{at}: every block must be an object with a 'type'.", at);
            }

            if (type == "text")
            {
                if (sb.Length > 0)
                {
                    sb.Append('\n');
                }

                sb.Append(RequiredString(b, "text", at + ".text"));
            }
            else if (type != "image")
            {
                throw new MappingException($"{at}: block type '{Trim(type)}' is not allowed here.", at);
            }
        }

        return sb.ToString();
    }

    private static void CopyNumber(Utf8JsonWriter w, JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (v.ValueKind != JsonValueKind.Number)
        {
            throw new MappingException($"{name}: must be a number.", name);
        }

        w.WritePropertyName(name);
        v.WriteTo(w);
    }

    private static string RequiredString(JsonElement obj, string name, string? field = null)
    {
        field ??= name;
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            throw new MappingException($"{field}: Field required.", field);
        }

        if (v.ValueKind != JsonValueKind.String)
        {
            throw new MappingException($"{field}: must be a string.", field);
        }

        return v.GetString()!;
    }

    private static string? OptionalString(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static string Trim(string? s) => s is null ? "" : s.Length <= 64 ? s : s[..64] + "…";

    private sealed class MappingException(string message, string? field) : Exception(message)
    {
        public string? Field { get; } = field;
    }
}
