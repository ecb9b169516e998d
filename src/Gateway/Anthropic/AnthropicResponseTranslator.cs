using System.Buffers;
using System.Text.Json;
using Gateway.Proxy;

namespace Gateway.Anthropic;

/// <summary>
/// Chat completions answer → Anthropic Messages answer (the one mapping of this direction), whole or streamed.
/// Whole: <c>message.content</c> → a text block, each tool call → a <c>tool_use</c> block (arguments parsed as its
/// input); <c>finish_reason</c> stop/length/tool_calls/content_filter → <c>stop_reason</c> end_turn/max_tokens/tool_use/
/// refusal; usage → <c>input_tokens</c> (prompt tokens not read from cache), <c>cache_read_input_tokens</c>
/// (<c>prompt_tokens_details.cached_tokens</c>), <c>output_tokens</c>. Streamed, event by event: the first chunk opens
/// <c>message_start</c>; text deltas become a text block's <c>text_delta</c>s, a tool call a <c>tool_use</c> block with
/// <c>input_json_delta</c>s (each block opened by <c>content_block_start</c> and closed by <c>content_block_stop</c> when
/// the next one starts or the answer ends); the end gives <c>message_delta</c> (stop reason, final usage) and
/// <c>message_stop</c>. Errors become <c>{"type":"error","error":{"type","message"}}</c> (an <c>error</c> event mid-stream).
/// </summary>
public sealed class AnthropicResponseTranslator : IResponseTranslator
{
    private readonly Func<int> _promptEstimate;
    private readonly Dictionary<int, int> _toolBlocks = [];
    private bool _started;
    private int _openBlock = -1;
    private bool _openIsText;
    private int _nextBlock;
    private string? _finish;
    private bool _sawToolCall;
    private int _prompt;
    private int _cached;
    private int _completion;
    private bool _usage;
    private bool _failed;

    /// <summary>Creates the translator of one answer to a request for <paramref name="model"/> (the name the client sent).</summary>
    /// <param name="model">Model name echoed in the answer.</param>
    /// <param name="promptEstimate">Prompt tokens as the gateway counted them (the stream's first event needs a figure before the worker reports usage).</param>
    public AnthropicResponseTranslator(string model, Func<int>? promptEstimate = null)
    {
        Model = model;
        _promptEstimate = promptEstimate ?? (static () => 0);
    }

    /// <summary>The model name echoed in the answer (the name the client asked for).</summary>
    public string Model { get; set; }

    /// <inheritdoc />
    public byte[] TranslateBody(ReadOnlySpan<byte> json)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json.ToArray());
        }
        catch (JsonException)
        {
            return Error(502, "The worker's answer was not valid JSON.");
        }

        using (doc)
        {
            var root = doc.RootElement;
            var buffer = new ArrayBufferWriter<byte>(512);
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteString("id", MessageId(root));
                w.WriteString("type", "message");
                w.WriteString("role", "assistant");
                w.WriteString("model", Model);
                w.WriteStartArray("content");
                string? finish = null;
                if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
                {
                    var choice = choices[0];
                    finish = choice.TryGetProperty("finish_reason", out var fr) && fr.ValueKind == JsonValueKind.String ? fr.GetString() : null;
                    if (choice.TryGetProperty("message", out var message))
                    {
                        if (message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String && c.GetString()!.Length > 0)
                        {
                            w.WriteStartObject();
                            w.WriteString("type", "text");
                            w.WriteString("text", c.GetString());
                            w.WriteEndObject();
                        }

                        if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                        {
                            foreach (var call in calls.EnumerateArray())
                            {
                                var f = call.GetProperty("function");
                                w.WriteStartObject();
                                w.WriteString("type", "tool_use");
                                w.WriteString("id", call.TryGetProperty("id", out var id) ? id.GetString() : "toolu_" + _nextBlock);
                                w.WriteString("name", f.GetProperty("name").GetString());
                                w.WritePropertyName("input");
                                WriteInput(w, f.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString()! : "{}");
                                w.WriteEndObject();
                                _sawToolCall = true;
                            }
                        }
                    }
                }

                w.WriteEndArray();
                w.WriteString("stop_reason", StopReason(finish));
                w.WriteNull("stop_sequence");
                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
                {
                    ReadUsage(usage);
                }

                w.WritePropertyName("usage");
                WriteUsage(w, includeInput: true);
                w.WriteEndObject();
            }

            return buffer.WrittenSpan.ToArray();
        }
    }

    /// <inheritdoc />
    public byte[] TranslateError(int status, ReadOnlySpan<byte> json)
    {
        string message = $"The request failed with status {status}.";
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e)
                && e.ValueKind == JsonValueKind.Object && e.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
            {
                message = m.GetString()!;
            }
        }
        catch (JsonException)
        {
            // not JSON: keep the generic message
        }

        return Error(status, message);
    }

    /// <summary>An Anthropic error body for <paramref name="status"/>.</summary>
    public static byte[] Error(int status, string message)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buffer))
        {
            WriteError(w, status, message);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The Anthropic error type of an HTTP status.</summary>
    public static string ErrorType(int status) => status switch
    {
        400 or 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 or 529 => "overloaded_error",
        _ => status < 500 ? "invalid_request_error" : "api_error",
    };

    /// <inheritdoc />
    public void OnChunk(ReadOnlySpan<byte> data, IBufferWriter<byte> output)
    {
        if (_failed)
        {
            return;
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(data.ToArray());
        }
        catch (JsonException)
        {
            return; // not a chunk we understand: nothing to say in the other API
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return;
            }

            var chunk = ChatChunk.Read(root);
            if (chunk.IsError)
            {
                string message = chunk.ErrorMessage;
                _failed = true;
                Event(output, "error", w => WriteErrorFields(w, 500, message));
                return;
            }

            if (!_started)
            {
                Start(output, root);
            }

            if (chunk.Usage.ValueKind == JsonValueKind.Object)
            {
                ReadUsage(chunk.Usage);
            }

            if (chunk.Text is { } text)
            {
                if (_openBlock < 0 || !_openIsText)
                {
                    OpenBlock(output, isText: true, w =>
                    {
                        w.WriteString("type", "text");
                        w.WriteString("text", "");
                    });
                }

                int index = _openBlock;
                Event(output, "content_block_delta", w =>
                {
                    w.WriteString("type", "content_block_delta");
                    w.WriteNumber("index", index);
                    w.WriteStartObject("delta");
                    w.WriteString("type", "text_delta");
                    w.WriteString("text", text);
                    w.WriteEndObject();
                });
            }

            if (chunk.ToolCalls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in chunk.ToolCalls.EnumerateArray())
                {
                    OnToolCallDelta(output, call);
                }
            }

            if (chunk.FinishReason is { } finish)
            {
                _finish = finish;
                CloseBlock(output);
            }
        }
    }

    /// <inheritdoc />
    public void OnEnd(IBufferWriter<byte> output)
    {
        if (_failed)
        {
            return;
        }

        if (!_started)
        {
            Start(output, default);
        }

        CloseBlock(output);
        Event(output, "message_delta", w =>
        {
            w.WriteString("type", "message_delta");
            w.WriteStartObject("delta");
            w.WriteString("stop_reason", StopReason(_finish));
            w.WriteNull("stop_sequence");
            w.WriteEndObject();
            w.WritePropertyName("usage");
            WriteUsage(w, includeInput: _usage);
        });
        Event(output, "message_stop", w => w.WriteString("type", "message_stop"));
    }

    private void OnToolCallDelta(IBufferWriter<byte> output, JsonElement call)
    {
        int toolIndex = call.TryGetProperty("index", out var ti) && ti.TryGetInt32(out int t) ? t : 0;
        call.TryGetProperty("function", out var f);
        if (!_toolBlocks.TryGetValue(toolIndex, out int block))
        {
            string id = call.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.String ? idEl.GetString()! : "toolu_" + _nextBlock;
            string name = f.ValueKind == JsonValueKind.Object && f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "";
            _sawToolCall = true;
            block = OpenBlock(output, isText: false, w =>
            {
                w.WriteString("type", "tool_use");
                w.WriteString("id", id);
                w.WriteString("name", name);
                w.WriteStartObject("input");
                w.WriteEndObject();
            });
            _toolBlocks[toolIndex] = block;
        }

        if (f.ValueKind == JsonValueKind.Object && f.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String
            && a.GetString() is { Length: > 0 } args && block == _openBlock)
        {
            Event(output, "content_block_delta", w =>
            {
                w.WriteString("type", "content_block_delta");
                w.WriteNumber("index", block);
                w.WriteStartObject("delta");
                w.WriteString("type", "input_json_delta");
                w.WriteString("partial_json", args);
                w.WriteEndObject();
            });
        }
    }

    private void Start(IBufferWriter<byte> output, JsonElement firstChunk)
    {
        _started = true;
        string id = firstChunk.ValueKind == JsonValueKind.Object ? MessageId(firstChunk) : "msg_gateway";
        int estimate = _promptEstimate();
        Event(output, "message_start", w =>
        {
            w.WriteString("type", "message_start");
            w.WriteStartObject("message");
            w.WriteString("id", id);
            w.WriteString("type", "message");
            w.WriteString("role", "assistant");
            w.WriteString("model", Model);
            w.WriteStartArray("content");
            w.WriteEndArray();
            w.WriteNull("stop_reason");
            w.WriteNull("stop_sequence");
            w.WriteStartObject("usage");
            w.WriteNumber("input_tokens", estimate);
            w.WriteNumber("cache_creation_input_tokens", 0);
            w.WriteNumber("cache_read_input_tokens", 0);
            w.WriteNumber("output_tokens", 0);
            w.WriteEndObject();
            w.WriteEndObject();
        });
    }

    private int OpenBlock(IBufferWriter<byte> output, bool isText, Action<Utf8JsonWriter> writeBlock)
    {
        CloseBlock(output);
        int index = _nextBlock++;
        _openBlock = index;
        _openIsText = isText;
        Event(output, "content_block_start", w =>
        {
            w.WriteString("type", "content_block_start");
            w.WriteNumber("index", index);
            w.WriteStartObject("content_block");
            writeBlock(w);
            w.WriteEndObject();
        });
        return index;
    }

    private void CloseBlock(IBufferWriter<byte> output)
    {
        if (_openBlock < 0)
        {
            return;
        }

        int index = _openBlock;
        _openBlock = -1;
        Event(output, "content_block_stop", w =>
        {
            w.WriteString("type", "content_block_stop");
            w.WriteNumber("index", index);
        });
    }

    private void ReadUsage(JsonElement usage)
    {
        _usage = true;
        _prompt = Int(usage, "prompt_tokens");
        _completion = Int(usage, "completion_tokens");
        _cached = usage.TryGetProperty("prompt_tokens_details", out var d) && d.ValueKind == JsonValueKind.Object ? Int(d, "cached_tokens") : 0;
    }

    private void WriteUsage(Utf8JsonWriter w, bool includeInput)
    {
        w.WriteStartObject();
        if (includeInput)
        {
            w.WriteNumber("input_tokens", Math.Max(0, _prompt - _cached));
            w.WriteNumber("cache_creation_input_tokens", 0);
            w.WriteNumber("cache_read_input_tokens", _cached);
        }

        w.WriteNumber("output_tokens", _completion);
        w.WriteEndObject();
    }

    private string StopReason(string? finish) => finish switch
    {
        "length" => "max_tokens",
        "tool_calls" or "function_call" => "tool_use",
        "content_filter" => "refusal",
        null when _sawToolCall => "tool_use",
        _ => "end_turn",
    };

    private static string MessageId(JsonElement root) =>
        root.TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String && id.GetString() is { Length: > 0 } s
            ? (s.StartsWith("msg_", StringComparison.Ordinal) ? s : "msg_" + s)
            : "msg_gateway";

    private static void WriteInput(Utf8JsonWriter w, string arguments)
    {
        try
        {
            using var doc = JsonDocument.Parse(arguments);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                doc.RootElement.WriteTo(w);
                return;
            }
        }
        catch (JsonException)
        {
            // arguments cut short (max_tokens): an empty input, as the stop reason says the answer is incomplete
        }

        w.WriteStartObject();
        w.WriteEndObject();
    }

    private static void WriteError(Utf8JsonWriter w, int status, string message)
    {
        w.WriteStartObject();
        WriteErrorFields(w, status, message);
        w.WriteEndObject();
    }

    private static void WriteErrorFields(Utf8JsonWriter w, int status, string message)
    {
        w.WriteString("type", "error");
        w.WriteStartObject("error");
        w.WriteString("type", ErrorType(status));
        w.WriteString("message", message);
        w.WriteEndObject();
    }

    private static int Int(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : 0;

    private static void Event(IBufferWriter<byte> output, string name, Action<Utf8JsonWriter> body)
    {
        output.Write("event: "u8);
        output.Write(System.Text.Encoding.UTF8.GetBytes(name));
        output.Write("\ndata: "u8);
        using (var w = new Utf8JsonWriter(output))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        output.Write("\n\n"u8);
    }
}
