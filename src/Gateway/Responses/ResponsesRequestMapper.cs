using System.Text.Json;
using System.Text.Json.Nodes;
using Llm.Prompt.OpenAi;

namespace Gateway.Responses;

/// <summary>A Responses request translated: the chat body to send, and what the answer and the store need.</summary>
/// <param name="ChatBody">Chat completions body.</param>
/// <param name="Model">Model the client named.</param>
/// <param name="History">The conversation so far as chat messages (the previous response's, then this input), instructions excluded.</param>
/// <param name="ResponseId">Id of the response this request creates.</param>
/// <param name="SessionKey">Id of the chain's first response (this one's when it starts a chain).</param>
/// <param name="Store">Whether the answer is kept (<c>store</c>, default true).</param>
/// <param name="Echo">Request fields the response object repeats (instructions, tools, previous_response_id, ...).</param>
public sealed record MappedResponsesRequest(byte[] ChatBody, string ResponseId, string Model, JsonArray History, string SessionKey, bool Store, JsonObject Echo)
{
    /// <summary>
    /// Function name → the <c>namespace</c> tool that grouped it (Codex's sub-agent tools): a call of such a function is
    /// answered with that <c>namespace</c>, so the client dispatches it to the right tool.
    /// </summary>
    public IReadOnlyDictionary<string, string> Namespaces { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);
}

/// <summary>
/// OpenAI Responses request → chat completions request (the one mapping of this direction): <c>instructions</c> → a
/// system message (not carried to later responses of the chain, as OpenAI does); <c>input</c> as a string → a user
/// message; input items: messages (roles user/assistant/system/developer, content a string or
/// <c>input_text</c>/<c>output_text</c>/<c>input_image</c> parts) → chat messages, <c>function_call</c> → the assistant's
/// <c>tool_calls</c> (consecutive calls merged into one message), <c>function_call_output</c> → <c>tool</c> messages,
/// <c>reasoning</c> items dropped; <c>previous_response_id</c> → the stored conversation of that response first (the
/// tenant's own only); function <c>tools</c> and <c>tool_choice</c> → chat tools; <c>max_output_tokens</c> →
/// <c>max_tokens</c>; <c>prompt_cache_key</c> (or else the id of the chain's first response, this one's when it starts
/// the chain) → <c>prompt_cache_key</c>, so every response of a chain is one session; a stream always asks for usage.
/// </summary>
public static class ResponsesRequestMapper
{
    /// <summary>Translates <paramref name="body"/>; <paramref name="lookup"/> finds the tenant's stored responses.</summary>
    public static bool TryMap(ReadOnlyMemory<byte> body, string responseId, Func<string, StoredResponse?> lookup, out MappedResponsesRequest? mapped, out OpenAiError? error)
    {
        mapped = null;
        // The shared parse (text check, unique keys, depth); the nodes read the document while it lives.
        if (!OpenAiRequestParser.TryParseDocument(body, out var doc, out error))
        {
            return false;
        }

        using var owner = doc!;
        JsonObject root;
        try
        {
            root = owner.RootElement.ValueKind == JsonValueKind.Object
                ? JsonObject.Create(owner.RootElement)!
                : throw new MappingException("Request body must be a JSON object.", null);
            mapped = Map(root, responseId, lookup);
            error = null;
            return true;
        }
        catch (JsonException ex)
        {
            error = OpenAiError.Invalid("Request body is not valid JSON: " + ex.Message.Split('.')[0] + ".", null, "invalid_json");
        }
        catch (MappingException ex)
        {
            error = OpenAiError.Invalid(ex.Message, ex.Field);
        }
        catch (InvalidOperationException ex)
        {
            // a field of the wrong JSON kind (JsonNode.GetValue)
            error = OpenAiError.Invalid("Invalid request body: " + ex.Message);
        }

        return false;
    }

    private static MappedResponsesRequest Map(JsonObject root, string responseId, Func<string, StoredResponse?> lookup)
    {
        string model = String(root, "model") ?? throw new MappingException("Missing required parameter: 'model'.", "model");
        var history = new JsonArray();
        string sessionKey = responseId;
        string? previous = String(root, "previous_response_id");
        if (previous is not null)
        {
            var stored = lookup(previous) ?? throw new MappingException($"Previous response with id '{Trim(previous)}' not found.", "previous_response_id");
            sessionKey = stored.SessionKey;
            foreach (var m in (JsonArray)JsonNode.Parse(stored.HistoryJson)!)
            {
                history.Add(m!.DeepClone());
            }
        }

        if (!root.TryGetPropertyValue("input", out var input) || input is null)
        {
            throw new MappingException("Missing required parameter: 'input'.", "input");
        }

        if (input.GetValueKind() == JsonValueKind.String)
        {
            history.Add(new JsonObject { ["role"] = "user", ["content"] = input.GetValue<string>() });
        }
        else if (input is JsonArray items)
        {
            AddItems(history, items);
        }
        else
        {
            throw new MappingException("'input' must be a string or an array of input items.", "input");
        }

        var chat = new JsonObject { ["model"] = model };
        var messages = new JsonArray();
        string? instructions = String(root, "instructions");
        if (instructions is not null)
        {
            messages.Add(new JsonObject { ["role"] = "system", ["content"] = instructions });
        }

        foreach (var m in history)
        {
            messages.Add(m!.DeepClone());
        }

        if (messages.Count == 0)
        {
            throw new MappingException("'input' must contain at least one item.", "input");
        }

        chat["messages"] = messages;
        if (Int(root, "max_output_tokens") is { } maxTokens)
        {
            chat["max_tokens"] = maxTokens;
        }

        foreach (var name in new[] { "temperature", "top_p", "parallel_tool_calls", "user" })
        {
            if (root[name] is { } v)
            {
                chat[name] = v.DeepClone();
            }
        }

        var namespaces = new Dictionary<string, string>(StringComparer.Ordinal);
        var tools = MapTools(root, chat, namespaces);
        bool stream = root["stream"]?.GetValueKind() == JsonValueKind.True;
        if (stream)
        {
            chat["stream"] = true;
            chat["stream_options"] = new JsonObject { ["include_usage"] = true };
        }

        string? cacheKey = String(root, "prompt_cache_key") ?? sessionKey;
        if (cacheKey is not null)
        {
            chat["prompt_cache_key"] = cacheKey;
        }

        bool store = root["store"]?.GetValueKind() != JsonValueKind.False;
        var echo = new JsonObject
        {
            ["instructions"] = instructions,
            ["previous_response_id"] = previous,
            ["store"] = store,
            ["tools"] = tools,
            ["tool_choice"] = root["tool_choice"]?.DeepClone() ?? "auto",
            ["parallel_tool_calls"] = root["parallel_tool_calls"]?.DeepClone() ?? true,
            ["temperature"] = root["temperature"]?.DeepClone() ?? 1.0,
            ["top_p"] = root["top_p"]?.DeepClone() ?? 1.0,
            ["max_output_tokens"] = root["max_output_tokens"]?.DeepClone(),
            ["metadata"] = root["metadata"]?.DeepClone() ?? new JsonObject(),
            ["prompt_cache_key"] = String(root, "prompt_cache_key"),
            ["user"] = root["user"]?.DeepClone(),
        };
        return new MappedResponsesRequest(System.Text.Encoding.UTF8.GetBytes(chat.ToJsonString()), responseId, model, history, sessionKey, store, echo) { Namespaces = namespaces };
    }

    private static void AddItems(JsonArray history, JsonArray items)
    {
        int i = 0;
        foreach (var node in items)
        {
            string at = $"input[{i++}]";
            if (node is not JsonObject item)
            {
                throw new MappingException($"'{at}' must be an object.", at);
            }

            string type = String(item, "type") ?? "message";
            switch (type)
            {
                case "message":
                    history.Add(Message(item, at));
                    break;
                case "function_call":
                {
                    var call = new JsonObject
                    {
                        ["id"] = String(item, "call_id") ?? throw new MappingException($"'{at}.call_id' is required.", at + ".call_id"),
                        ["type"] = "function",
                        ["function"] = new JsonObject
                        {
                            ["name"] = String(item, "name") ?? throw new MappingException($"'{at}.name' is required.", at + ".name"),
                            ["arguments"] = String(item, "arguments") ?? "{}",
                        },
                    };
                    if (history.Count > 0 && history[^1] is JsonObject last && String(last, "role") == "assistant")
                    {
                        if (last["tool_calls"] is not JsonArray calls)
                        {
                            last["tool_calls"] = calls = new JsonArray();
                        }

                        calls.Add(call);
                    }
                    else
                    {
                        history.Add(new JsonObject { ["role"] = "assistant", ["content"] = null, ["tool_calls"] = new JsonArray(call) });
                    }

                    break;
                }

                case "function_call_output":
                {
                    var output = item["output"];
                    string text = output?.GetValueKind() == JsonValueKind.String ? output.GetValue<string>() : JoinText(output as JsonArray);
                    if (String(item, "call_id") is { } callId)
                    {
                        history.Add(new JsonObject { ["role"] = "tool", ["tool_call_id"] = callId, ["content"] = text });
                    }
                    else if (String(item, "name") is { } name)
                    {
                        // An output no call asked for (Codex adds its agent's state this way, e.g. name "goal_objective",
                        // namespace "agent"): chat completions has no tool message without a call, so it reaches the
                        // model as a user message that names it.
                        string qualified = String(item, "namespace") is { } ns ? ns + "." + name : name;
                        history.Add(new JsonObject { ["role"] = "user", ["content"] = $"[{qualified}] {text}" });
                    }
                    else
                    {
                        throw new MappingException($"'{at}.call_id' is required.", at + ".call_id");
                    }

                    break;
                }

                case "reasoning":
                    break;
                default:
                    throw new MappingException($"Input item type '{Trim(type)}' is not supported by this gateway.", at + ".type");
            }
        }
    }

    private static JsonObject Message(JsonObject item, string at)
    {
        string role = String(item, "role") ?? throw new MappingException($"'{at}.role' is required.", at + ".role");
        role = role switch
        {
            "user" or "assistant" or "system" => role,
            "developer" => "system",
            _ => throw new MappingException($"'{at}.role' must be one of user, assistant, system, developer.", at + ".role"),
        };
        var content = item["content"];
        if (content?.GetValueKind() == JsonValueKind.String)
        {
            return new JsonObject { ["role"] = role, ["content"] = content.GetValue<string>() };
        }

        if (content is not JsonArray parts)
        {
            throw new MappingException($"'{at}.content' must be a string or an array of content parts.", at + ".content");
        }

        if (role != "user")
        {
            return new JsonObject { ["role"] = role, ["content"] = JoinText(parts) };
        }

        var chatParts = new JsonArray();
        foreach (var p in parts)
        {
            string type = p is JsonObject po ? String(po, "type") ?? "" : "";
            switch (type)
            {
                case "input_text" or "output_text" or "text":
                    chatParts.Add(new JsonObject { ["type"] = "text", ["text"] = String((JsonObject)p!, "text") ?? "" });
                    break;
                case "input_image":
                    chatParts.Add(new JsonObject { ["type"] = "image_url", ["image_url"] = new JsonObject { ["url"] = String((JsonObject)p!, "image_url") ?? "" } });
                    break;
                default:
                    throw new MappingException($"Content part type '{Trim(type)}' in '{at}.content' is not supported by this gateway.", at + ".content");
            }
        }

        return new JsonObject { ["role"] = role, ["content"] = chatParts };
    }

    private static JsonArray MapTools(JsonObject root, JsonObject chat, Dictionary<string, string> namespaces)
    {
        var echo = new JsonArray();
        if (root["tools"] is JsonArray tools && tools.Count > 0)
        {
            var chatTools = new JsonArray();
            foreach (var (tool, at, ns) in FunctionTools(tools, "tools", null))
            {
                string name = String(tool, "name") ?? throw new MappingException($"'{at}.name' is required.", at + ".name");
                if (ns is not null)
                {
                    namespaces.TryAdd(name, ns);
                }

                var function = new JsonObject { ["name"] = name };
                if (tool["description"] is { } d)
                {
                    function["description"] = d.DeepClone();
                }

                function["parameters"] = tool["parameters"]?.DeepClone() ?? new JsonObject { ["type"] = "object" };
                chatTools.Add(new JsonObject { ["type"] = "function", ["function"] = function });
                echo.Add(tool.DeepClone());
            }

            if (chatTools.Count > 0)
            {
                chat["tools"] = chatTools;
            }
        }
        else if (root["tools"] is { } other && other is not JsonArray)
        {
            throw new MappingException("'tools' must be an array.", "tools");
        }

        var choice = root["tool_choice"];
        if (choice is null)
        {
            return echo;
        }

        if (choice.GetValueKind() == JsonValueKind.String)
        {
            chat["tool_choice"] = choice.GetValue<string>();
        }
        else if (choice is JsonObject co && String(co, "type") == "function" && String(co, "name") is { } name)
        {
            chat["tool_choice"] = new JsonObject { ["type"] = "function", ["function"] = new JsonObject { ["name"] = name } };
        }
        else
        {
            throw new MappingException("'tool_choice' must be \"auto\", \"none\", \"required\" or {\"type\":\"function\",\"name\":...}.", "tool_choice");
        }

        return echo;
    }

    /// <summary>
    /// The function tools of <paramref name="tools"/>: <c>function</c> tools, and the function tools grouped in a
    /// <c>namespace</c> (Codex groups its sub-agent tools so); hosted tools (<c>web_search</c>, <c>file_search</c>, …)
    /// are left out: no worker runs them, and the model is then simply not offered them. Each comes with the name of the
    /// namespace that grouped it (null at the top level).
    /// </summary>
    private static IEnumerable<(JsonObject Tool, string At, string? Namespace)> FunctionTools(JsonArray tools, string prefix, string? ns)
    {
        int i = 0;
        foreach (var t in tools)
        {
            string at = $"{prefix}[{i++}]";
            if (t is not JsonObject tool)
            {
                throw new MappingException($"'{at}' must be an object.", at);
            }

            switch (String(tool, "type"))
            {
                case "function":
                    yield return (tool, at, ns);
                    break;
                case "namespace" when tool["tools"] is JsonArray inner:
                    foreach (var f in FunctionTools(inner, at + ".tools", String(tool, "name")))
                    {
                        yield return f;
                    }

                    break;
            }
        }
    }

    private static string JoinText(JsonArray? parts)
    {
        if (parts is null)
        {
            return "";
        }

        var sb = new System.Text.StringBuilder();
        foreach (var p in parts)
        {
            if (p is JsonObject po && String(po, "text") is { } text)
            {
                sb.Append(text);
            }
        }

        return sb.ToString();
    }

    private static string? String(JsonObject o, string name) =>
        o[name] is { } v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    private static int? Int(JsonObject o, string name)
    {
        if (o[name] is not { } v || v.GetValueKind() == JsonValueKind.Null)
        {
            return null;
        }

        if (v.GetValueKind() != JsonValueKind.Number || !v.AsValue().TryGetValue(out int n) || n < 1)
        {
            throw new MappingException($"'{name}' must be a positive integer.", name);
        }

        return n;
    }

    private static string Trim(string s) => s.Length <= 64 ? s : s[..64] + "…";

    private sealed class MappingException(string message, string? field) : Exception(message)
    {
        public string? Field { get; } = field;
    }
}
