using System.Text.Json;

namespace Llm.Prompt.OpenAi;

/// <summary>
/// Parses and validates an OpenAI request body once (gateway and worker share it). Every problem comes back as an
/// <see cref="OpenAiError"/> naming the parameter, never as an exception. JSON depth is bounded, keys are unique, and
/// every string must be text (<see cref="JsonTextCheck"/>), so nothing reading an accepted body can throw on it.
/// </summary>
public static class OpenAiRequestParser
{
    /// <summary>Maximum JSON nesting accepted.</summary>
    public const int MaxDepth = 64;

    /// <summary>Parses <paramref name="utf8Body"/> sent to <paramref name="endpoint"/>.</summary>
    public static bool TryParse(ReadOnlyMemory<byte> utf8Body, OpenAiEndpoint endpoint, out OpenAiRequest? request, out OpenAiError? error)
    {
        request = null;
        if (!TryParseDocument(utf8Body, out var doc, out error))
        {
            return false;
        }

        using (doc)
        {
            try
            {
                request = Parse(doc!.RootElement, endpoint);
                error = null;
                return true;
            }
            catch (RequestValidationException ex)
            {
                error = ex.Error;
                return false;
            }
        }
    }

    /// <summary>
    /// The one way a request body becomes a <see cref="JsonDocument"/> (OpenAI and Anthropic surfaces alike): not
    /// empty, JSON, at most <see cref="MaxDepth"/> deep, every string valid text (<see cref="JsonTextCheck"/>) and
    /// no key twice in one object; otherwise a 400 <c>invalid_json</c>. Nothing reading the document afterwards
    /// (renderers, the body rewriter, the worker's handlers) can then throw on its strings.
    /// </summary>
    public static bool TryParseDocument(ReadOnlyMemory<byte> utf8Body, out JsonDocument? document, out OpenAiError? error)
    {
        document = null;
        if (utf8Body.IsEmpty)
        {
            error = OpenAiError.Invalid("Request body is empty; expected a JSON object.", null, "invalid_json");
            return false;
        }

        // Text first: the duplicate-key check below unescapes property names and would throw on a lone surrogate.
        if ((error = JsonTextCheck.Check(utf8Body.Span, MaxDepth)) is not null)
        {
            return false;
        }

        try
        {
            // Duplicate keys are refused: two readers of one body (gateway, worker, a re-serialiser) must never disagree
            // on which value counts.
            document = JsonDocument.Parse(utf8Body, new JsonDocumentOptions { MaxDepth = MaxDepth, AllowDuplicateProperties = false });
            return true;
        }
        catch (JsonException ex)
        {
            error = OpenAiError.Invalid($"Request body is not valid JSON: {Trim(ex.Message)}", null, "invalid_json");
            return false;
        }
    }

    private static OpenAiRequest Parse(JsonElement root, OpenAiEndpoint endpoint)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Fail("Request body must be a JSON object.", null);
        }

        string model = RequiredString(root, "model");
        bool stream = OptionalBool(root, "stream") ?? false;
        bool includeUsage = false;
        if (root.TryGetProperty("stream_options", out var so) && so.ValueKind != JsonValueKind.Null)
        {
            if (so.ValueKind != JsonValueKind.Object)
            {
                throw Fail("'stream_options' must be an object.", "stream_options");
            }

            includeUsage = OptionalBool(so, "include_usage", "stream_options.include_usage") ?? false;
        }

        int? maxTokens = OptionalInt(root, "max_completion_tokens") ?? OptionalInt(root, "max_tokens");
        if (maxTokens is < 1)
        {
            throw Fail($"'max_tokens' must be at least 1, got {maxTokens}.", "max_tokens");
        }

        int n = OptionalInt(root, "n") ?? 1;
        if (n < 1 || n > 128)
        {
            throw Fail($"'n' must be between 1 and 128, got {n}.", "n");
        }

        long? seed = null;
        if (root.TryGetProperty("seed", out var seedEl) && seedEl.ValueKind != JsonValueKind.Null)
        {
            if (seedEl.ValueKind != JsonValueKind.Number || !seedEl.TryGetInt64(out long s))
            {
                throw Fail("'seed' must be an integer.", "seed");
            }

            seed = s;
        }

        var stop = ParseStop(root);
        string? user = OptionalString(root, "user");
        string? cacheKey = OptionalString(root, "prompt_cache_key");
        var (toolNames, toolChoice) = ParseTools(root);

        switch (endpoint)
        {
            case OpenAiEndpoint.ChatCompletions:
            {
                if (!root.TryGetProperty("messages", out var messages))
                {
                    throw Fail("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
                }

                if (messages.ValueKind != JsonValueKind.Array)
                {
                    throw Fail("'messages' must be an array.", "messages");
                }

                if (messages.GetArrayLength() == 0)
                {
                    throw Fail("'messages' must contain at least one message.", "messages");
                }

                int i = 0, assistants = 0;
                string? lastRole = null;
                foreach (var m in messages.EnumerateArray())
                {
                    lastRole = ValidateMessage(m, i++);
                    if (lastRole == "assistant")
                    {
                        assistants++;
                    }
                }

                return new OpenAiRequest
                {
                    Endpoint = endpoint, Model = model, Stream = stream, IncludeUsage = includeUsage, MaxTokens = maxTokens, N = n,
                    Stop = stop, Seed = seed, ToolNames = toolNames, ToolChoice = toolChoice, User = user, PromptCacheKey = cacheKey,
                    PromptText = PromptRenderer.RenderChat(messages, root.TryGetProperty("tools", out var t) ? t : default),
                    MessageCount = i, LastRole = lastRole, PriorTurns = assistants,
                };
            }

            case OpenAiEndpoint.Completions:
            {
                if (!root.TryGetProperty("prompt", out var prompt))
                {
                    throw Fail("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
                }

                string text = prompt.ValueKind switch
                {
                    JsonValueKind.String => prompt.GetString()!,
                    JsonValueKind.Array when prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String => prompt[0].GetString()!,
                    JsonValueKind.Array => throw Fail("'prompt' must be a string or an array with one string (batched prompts are not supported).", "prompt"),
                    _ => throw Fail("'prompt' must be a string.", "prompt"),
                };
                return new OpenAiRequest
                {
                    Endpoint = endpoint, Model = model, Stream = stream, IncludeUsage = includeUsage, MaxTokens = maxTokens, N = n,
                    Stop = stop, Seed = seed, User = user, PromptCacheKey = cacheKey, PromptText = text,
                };
            }

            default:
            {
                if (!root.TryGetProperty("input", out var input))
                {
                    throw Fail("Missing required parameter: 'input'.", "input", "missing_required_parameter");
                }

                var inputs = new List<string>();
                if (input.ValueKind == JsonValueKind.String)
                {
                    inputs.Add(input.GetString()!);
                }
                else if (input.ValueKind == JsonValueKind.Array && input.GetArrayLength() > 0)
                {
                    foreach (var e in input.EnumerateArray())
                    {
                        if (e.ValueKind != JsonValueKind.String)
                        {
                            throw Fail("'input' must be a string or an array of strings.", "input");
                        }

                        inputs.Add(e.GetString()!);
                    }
                }
                else
                {
                    throw Fail("'input' must be a non-empty string or array of strings.", "input");
                }

                if (inputs.Count > 2048)
                {
                    throw Fail("'input' may hold at most 2048 items.", "input");
                }

                return new OpenAiRequest
                {
                    Endpoint = endpoint, Model = model, User = user, EmbeddingInputs = inputs, PromptText = string.Join('\n', inputs),
                };
            }
        }
    }

    private static string ValidateMessage(JsonElement m, int index)
    {
        // The parameter path is only spelled out for an error (this runs for every message of every request).
        string P() => $"messages[{index}]";
        if (m.ValueKind != JsonValueKind.Object)
        {
            throw Fail($"'{P()}' must be an object.", P());
        }

        if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
        {
            throw Fail($"'{P()}.role' is required and must be a string.", $"{P()}.role");
        }

        string? r = KnownRole(role);
        if (r is null)
        {
            throw Fail($"'{P()}.role' must be one of system, developer, user, assistant, tool; got '{Trim(role.GetString()!)}'.", $"{P()}.role");
        }

        if (m.TryGetProperty("content", out var content))
        {
            if (content.ValueKind is not (JsonValueKind.String or JsonValueKind.Array or JsonValueKind.Null))
            {
                throw Fail($"'{P()}.content' must be a string, an array of content parts, or null.", $"{P()}.content");
            }
        }
        else if (r != "assistant")
        {
            throw Fail($"'{P()}.content' is required for role '{r}'.", $"{P()}.content", "missing_required_parameter");
        }

        if (m.TryGetProperty("tool_calls", out var tc) && tc.ValueKind is not (JsonValueKind.Array or JsonValueKind.Null))
        {
            throw Fail($"'{P()}.tool_calls' must be an array.", $"{P()}.tool_calls");
        }

        return r;
    }

    /// <summary>The role's name as a constant (no string per message), or null for a role the API does not know.</summary>
    private static string? KnownRole(JsonElement role)
    {
        foreach (var known in (ReadOnlySpan<string>)["user", "assistant", "system", "tool", "developer", "function"])
        {
            if (role.ValueEquals(known))
            {
                return known;
            }
        }

        return null;
    }

    private static (IReadOnlyList<string> Names, string? Choice) ParseTools(JsonElement root)
    {
        List<string>? names = null;
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind != JsonValueKind.Null)
        {
            if (tools.ValueKind != JsonValueKind.Array)
            {
                throw Fail("'tools' must be an array.", "tools");
            }

            int i = 0;
            foreach (var t in tools.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object
                    || !f.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                {
                    throw Fail($"'tools[{i}]' must be {{\"type\":\"function\",\"function\":{{\"name\":...}}}}.", $"tools[{i}]");
                }

                (names ??= []).Add(name.GetString()!);
                i++;
            }
        }

        string? choice = null;
        if (root.TryGetProperty("tool_choice", out var tc) && tc.ValueKind != JsonValueKind.Null)
        {
            choice = tc.ValueKind switch
            {
                JsonValueKind.String => tc.GetString(),
                JsonValueKind.Object when tc.TryGetProperty("function", out var f) && f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String => n.GetString(),
                _ => throw Fail("'tool_choice' must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}.", "tool_choice"),
            };
        }

        return (names ?? (IReadOnlyList<string>)[], choice);
    }

    private static IReadOnlyList<string> ParseStop(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (stop.ValueKind == JsonValueKind.String)
        {
            return [stop.GetString()!];
        }

        if (stop.ValueKind == JsonValueKind.Array && stop.GetArrayLength() <= 4)
        {
            var list = new List<string>();
            foreach (var s in stop.EnumerateArray())
            {
                if (s.ValueKind != JsonValueKind.String)
                {
                    throw Fail("'stop' must be a string or an array of up to 4 strings.", "stop");
                }

                list.Add(s.GetString()!);
            }

            return list;
        }

        throw Fail("'stop' must be a string or an array of up to 4 strings.", "stop");
    }

    private static string RequiredString(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v))
        {
            throw Fail($"Missing required parameter: '{name}'.", name, "missing_required_parameter");
        }

        string? value = v.ValueKind == JsonValueKind.String ? v.GetString() : null; // one string, not one to test and one to keep
        if (string.IsNullOrEmpty(value))
        {
            throw Fail($"'{name}' must be a non-empty string.", name);
        }

        return value;
    }

    private static string? OptionalString(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw Fail($"'{name}' must be a string.", name);
    }

    private static bool? OptionalBool(JsonElement o, string name, string? param = null)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Fail($"'{param ?? name}' must be a boolean.", param ?? name),
        };
    }

    private static int? OptionalInt(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Number)
        {
            throw Fail($"'{name}' must be an integer.", name);
        }

        if (!v.TryGetInt64(out long l))
        {
            throw Fail($"'{name}' must be an integer.", name);
        }

        if (l > int.MaxValue || l < int.MinValue)
        {
            throw Fail($"'{name}' is out of range: {l}.", name);
        }

        return (int)l;
    }

    private static string Trim(string s) => s.Length <= 160 ? s : s[..160] + "…";

    private static RequestValidationException Fail(string message, string? param, string? code = null) =>
        new(OpenAiError.Invalid(message, param, code));

    private sealed class RequestValidationException(OpenAiError error) : Exception(error.Message)
    {
        public OpenAiError Error { get; } = error;
    }
}
