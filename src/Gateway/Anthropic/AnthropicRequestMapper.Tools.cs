using System.Text.Json;

namespace Gateway.Anthropic;

/// <summary>
/// The request mapping's stop sequences and tools: <c>stop_sequences</c> → <c>stop</c>; <c>tools</c> → function tools;
/// <c>tool_choice</c> auto/any/tool/none → auto/required/named function/none (see AnthropicRequestMapper.cs).
/// </summary>
public static partial class AnthropicRequestMapper
{
    private static void WriteStop(Utf8JsonWriter w, JsonElement root)
    {
        if (!root.TryGetProperty("stop_sequences", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (stop.ValueKind != JsonValueKind.Array)
        {
            throw new MappingException("stop_sequences: must be an array of strings.", "stop_sequences");
        }

        if (stop.GetArrayLength() == 0)
        {
            return;
        }

        w.WriteStartArray("stop");
        foreach (var s in stop.EnumerateArray())
        {
            if (s.ValueKind != JsonValueKind.String)
            {
                throw new MappingException("stop_sequences: must be an array of strings.", "stop_sequences");
            }

            w.WriteStringValue(s.GetString());
        }

        w.WriteEndArray();
    }

    private static void WriteTools(Utf8JsonWriter w, JsonElement root)
    {
        bool hasTools = root.TryGetProperty("tools", out var tools) && tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0;
        if (tools.ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null or JsonValueKind.Array))
        {
            throw new MappingException("tools: must be an array.", "tools");
        }

        if (hasTools)
        {
            w.WriteStartArray("tools");
            int i = 0;
            foreach (var t in tools.EnumerateArray())
            {
                string at = $"tools.{i++}";
                if (t.ValueKind != JsonValueKind.Object)
                {
                    throw new MappingException($"{at}: must be an object.", at);
                }

                string? type = OptionalString(t, "type");
                if (type is not (null or "custom"))
                {
                    throw new MappingException($"{at}.type: server tool '{Trim(type)}' is not supported by this gateway; declare tools with 'name' and 'input_schema'.", at + ".type");
                }

                w.WriteStartObject();
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", RequiredString(t, "name", at + ".name"));
                if (OptionalString(t, "description") is { } d)
                {
                    w.WriteString("description", d);
                }

                if (!t.TryGetProperty("input_schema", out var schema) || schema.ValueKind != JsonValueKind.Object)
                {
                    throw new MappingException($"{at}.input_schema: Field required (a JSON Schema object).", at + ".input_schema");
                }

                w.WritePropertyName("parameters");
                schema.WriteTo(w);
                w.WriteEndObject();
                w.WriteEndObject();
            }

            w.WriteEndArray();
        }

        if (!root.TryGetProperty("tool_choice", out var choice) || choice.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (choice.ValueKind != JsonValueKind.Object)
        {
            throw new MappingException("tool_choice: must be an object with a 'type'.", "tool_choice");
        }

        string kind = RequiredString(choice, "type", "tool_choice.type");
        if (kind != "none" && !hasTools)
        {
            throw new MappingException("tool_choice: may only be given with 'tools'.", "tool_choice");
        }

        switch (kind)
        {
            case "auto":
                w.WriteString("tool_choice", "auto");
                break;
            case "any":
                w.WriteString("tool_choice", "required");
                break;
            case "none":
                w.WriteString("tool_choice", "none");
                break;
            case "tool":
                w.WriteStartObject("tool_choice");
                w.WriteString("type", "function");
                w.WriteStartObject("function");
                w.WriteString("name", RequiredString(choice, "name", "tool_choice.name"));
                w.WriteEndObject();
                w.WriteEndObject();
                break;
            default:
                throw new MappingException($"tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'.", "tool_choice.type");
        }

        if (choice.TryGetProperty("disable_parallel_tool_use", out var dp) && dp.ValueKind == JsonValueKind.True && hasTools)
        {
            w.WriteBoolean("parallel_tool_calls", false);
        }
    }
}
