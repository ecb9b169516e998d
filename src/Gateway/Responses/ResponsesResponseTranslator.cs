using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Proxy;

namespace Gateway.Responses;

/// <summary>
/// Chat completions answer → OpenAI Responses answer (the one mapping of this direction), whole or streamed, and the
/// record kept for <c>GET</c> and <c>previous_response_id</c>. Content → a <c>message</c> output item with an
/// <c>output_text</c> part; each tool call → a <c>function_call</c> item (<c>call_id</c>, name, arguments);
/// finish <c>length</c> → status <c>incomplete</c> (<c>max_output_tokens</c>); usage → <c>input_tokens</c> (with
/// <c>input_tokens_details.cached_tokens</c>), <c>output_tokens</c>. Streamed, event by event: <c>response.created</c>,
/// <c>response.in_progress</c>, then per item <c>response.output_item.added</c>, <c>response.content_part.added</c>,
/// <c>response.output_text.delta</c>… or <c>response.function_call_arguments.delta</c>…, their <c>.done</c> events and
/// <c>response.output_item.done</c>, and <c>response.completed</c> (or <c>response.incomplete</c>) at the end. Errors
/// keep the OpenAI shape; mid-stream they become an <c>error</c> event and <c>response.failed</c>.
/// </summary>
public sealed class ResponsesResponseTranslator : IResponseTranslator
{
    private readonly IResponseStore _store;
    private readonly TimeProvider _time;
    private readonly StringBuilder _text = new();
    private readonly List<(string CallId, string ItemId, string Name, StringBuilder Args)> _calls = [];
    private readonly Dictionary<int, int> _callByIndex = [];
    private readonly List<int> _items = []; // output order: -1 the message, n the call in slot n
    private int _sequence;
    private bool _started;
    private bool _messageOpen;
    private string _messageId = "";
    private int _openCall = -1;
    private int _outputIndex = -1;
    private string? _finish;
    private int _prompt;
    private int _cached;
    private int _completion;
    private bool _failed;

    /// <summary>Creates the translator of one answer; <see cref="Request"/> and <see cref="TenantPath"/> are set once the request is translated.</summary>
    public ResponsesResponseTranslator(IResponseStore store, TimeProvider time)
    {
        _store = store;
        _time = time;
        CreatedAt = time.GetUtcNow().ToUnixTimeSeconds();
    }

    /// <summary>The translated request (null until translated).</summary>
    public MappedResponsesRequest? Request { get; set; }

    /// <summary>The tenant the answer is stored for.</summary>
    public string TenantPath { get; set; } = "";

    /// <summary>The write of the finished response to the store (null until then); the endpoint awaits it after the answer.</summary>
    public Task? PendingStore { get; private set; }

    private long CreatedAt { get; }

    /// <inheritdoc />
    public byte[] TranslateBody(ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            var root = doc.RootElement;
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0)
            {
                var choice = choices[0];
                _finish = choice.TryGetProperty("finish_reason", out var fr) && fr.ValueKind == JsonValueKind.String ? fr.GetString() : null;
                if (choice.TryGetProperty("message", out var message))
                {
                    if (message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                    {
                        _text.Append(c.GetString());
                        _messageId = NewId("msg_");
                        _items.Add(-1);
                    }

                    if (message.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
                    {
                        foreach (var call in calls.EnumerateArray())
                        {
                            var f = call.GetProperty("function");
                            _calls.Add((call.TryGetProperty("id", out var id) ? id.GetString()! : NewId("call_"), NewId("fc_"), f.GetProperty("name").GetString()!,
                                new StringBuilder(f.TryGetProperty("arguments", out var a) ? a.GetString() : "{}")));
                            _items.Add(_calls.Count - 1);
                        }
                    }
                }
            }

            if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object)
            {
                ReadUsage(usage);
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException)
        {
            return new Llm.Prompt.OpenAi.OpenAiError(502, "The worker's answer was not a chat completion.", "server_error", null, "upstream_error").ToJsonBytes();
        }

        var response = BuildResponse(_finish == "length" ? "incomplete" : "completed");
        Save(response);
        return Encoding.UTF8.GetBytes(response.ToJsonString());
    }

    /// <inheritdoc />
    public byte[] TranslateError(int status, ReadOnlySpan<byte> json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json.ToArray());
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out _))
            {
                return json.ToArray();
            }
        }
        catch (JsonException)
        {
            // not JSON: wrapped below
        }

        return new Llm.Prompt.OpenAi.OpenAiError(status, $"The request failed with status {status}.", status >= 500 ? "server_error" : "invalid_request_error").ToJsonBytes();
    }

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
            return;
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
                _failed = true;
                Event(output, new JsonObject { ["type"] = "error", ["code"] = chunk.ErrorCode, ["message"] = chunk.ErrorMessage, ["param"] = null });
                var failed = BuildResponse("failed");
                failed["error"] = new JsonObject { ["code"] = "server_error", ["message"] = chunk.ErrorMessage };
                Event(output, new JsonObject { ["type"] = "response.failed", ["response"] = failed });
                return;
            }

            if (!_started)
            {
                _started = true;
                Event(output, new JsonObject { ["type"] = "response.created", ["response"] = BuildResponse("in_progress") });
                Event(output, new JsonObject { ["type"] = "response.in_progress", ["response"] = BuildResponse("in_progress") });
            }

            if (chunk.Usage.ValueKind == JsonValueKind.Object)
            {
                ReadUsage(chunk.Usage);
            }

            if (chunk.Text is { } text)
            {
                OnText(output, text);
            }

            if (chunk.ToolCalls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in chunk.ToolCalls.EnumerateArray())
                {
                    OnToolCall(output, call);
                }
            }

            if (chunk.FinishReason is { } finish)
            {
                _finish = finish;
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
            _started = true;
            Event(output, new JsonObject { ["type"] = "response.created", ["response"] = BuildResponse("in_progress") });
        }

        CloseMessage(output);
        CloseCall(output);
        bool incomplete = _finish == "length";
        var response = BuildResponse(incomplete ? "incomplete" : "completed");
        Save(response);
        Event(output, new JsonObject { ["type"] = incomplete ? "response.incomplete" : "response.completed", ["response"] = response });
    }

    private void OnText(IBufferWriter<byte> output, string text)
    {
        if (!_messageOpen)
        {
            CloseCall(output);
            _messageOpen = true;
            _messageId = NewId("msg_");
            _items.Add(-1);
            _outputIndex++;
            Event(output, new JsonObject
            {
                ["type"] = "response.output_item.added",
                ["output_index"] = _outputIndex,
                ["item"] = new JsonObject { ["id"] = _messageId, ["type"] = "message", ["status"] = "in_progress", ["role"] = "assistant", ["content"] = new JsonArray() },
            });
            Event(output, new JsonObject
            {
                ["type"] = "response.content_part.added",
                ["item_id"] = _messageId,
                ["output_index"] = _outputIndex,
                ["content_index"] = 0,
                ["part"] = TextPart(""),
            });
        }

        _text.Append(text);
        Event(output, new JsonObject
        {
            ["type"] = "response.output_text.delta",
            ["item_id"] = _messageId,
            ["output_index"] = _outputIndex,
            ["content_index"] = 0,
            ["delta"] = text,
            ["logprobs"] = new JsonArray(),
        });
    }

    private void CloseMessage(IBufferWriter<byte> output)
    {
        if (!_messageOpen)
        {
            return;
        }

        _messageOpen = false;
        string text = _text.ToString();
        Event(output, new JsonObject { ["type"] = "response.output_text.done", ["item_id"] = _messageId, ["output_index"] = _outputIndex, ["content_index"] = 0, ["text"] = text, ["logprobs"] = new JsonArray() });
        Event(output, new JsonObject { ["type"] = "response.content_part.done", ["item_id"] = _messageId, ["output_index"] = _outputIndex, ["content_index"] = 0, ["part"] = TextPart(text) });
        Event(output, new JsonObject { ["type"] = "response.output_item.done", ["output_index"] = _outputIndex, ["item"] = MessageItem("completed") });
    }

    private void OnToolCall(IBufferWriter<byte> output, JsonElement call)
    {
        int index = call.TryGetProperty("index", out var ti) && ti.TryGetInt32(out int t) ? t : 0;
        call.TryGetProperty("function", out var f);
        if (!_callByIndex.TryGetValue(index, out int slot))
        {
            CloseMessage(output);
            CloseCall(output);
            string callId = call.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.String ? idEl.GetString()! : NewId("call_");
            string name = f.ValueKind == JsonValueKind.Object && f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : "";
            _calls.Add((callId, NewId("fc_"), name, new StringBuilder()));
            slot = _calls.Count - 1;
            _items.Add(slot);
            _callByIndex[index] = slot;
            _openCall = slot;
            _outputIndex++;
            Event(output, new JsonObject { ["type"] = "response.output_item.added", ["output_index"] = _outputIndex, ["item"] = CallItem(slot, "in_progress") });
        }

        if (f.ValueKind == JsonValueKind.Object && f.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String && a.GetString() is { Length: > 0 } args && slot == _openCall)
        {
            _calls[slot].Args.Append(args);
            Event(output, new JsonObject { ["type"] = "response.function_call_arguments.delta", ["item_id"] = _calls[slot].ItemId, ["output_index"] = _outputIndex, ["delta"] = args });
        }
    }

    private void CloseCall(IBufferWriter<byte> output)
    {
        if (_openCall < 0)
        {
            return;
        }

        int slot = _openCall;
        _openCall = -1;
        Event(output, new JsonObject { ["type"] = "response.function_call_arguments.done", ["item_id"] = _calls[slot].ItemId, ["output_index"] = _outputIndex, ["arguments"] = _calls[slot].Args.ToString() });
        Event(output, new JsonObject { ["type"] = "response.output_item.done", ["output_index"] = _outputIndex, ["item"] = CallItem(slot, "completed") });
    }

    private JsonObject BuildResponse(string status)
    {
        var req = Request;
        var output = new JsonArray();
        bool done = status is "completed" or "incomplete";
        if (done)
        {
            foreach (int item in _items)
            {
                output.Add(item < 0 ? MessageItem("completed") : CallItem(item, "completed"));
            }
        }

        var response = new JsonObject
        {
            ["id"] = req?.ResponseId ?? NewId("resp_"),
            ["object"] = "response",
            ["created_at"] = CreatedAt,
            ["status"] = status,
            ["error"] = null,
            ["incomplete_details"] = status == "incomplete" ? new JsonObject { ["reason"] = "max_output_tokens" } : null,
            ["model"] = req?.Model ?? "",
            ["output"] = output,
            ["text"] = new JsonObject { ["format"] = new JsonObject { ["type"] = "text" } },
            ["truncation"] = "disabled",
            ["reasoning"] = new JsonObject { ["effort"] = null, ["summary"] = null },
        };
        if (req is not null)
        {
            foreach (var (k, v) in req.Echo)
            {
                response[k] = v?.DeepClone();
            }
        }

        response["usage"] = done ? new JsonObject
        {
            ["input_tokens"] = _prompt,
            ["input_tokens_details"] = new JsonObject { ["cached_tokens"] = _cached },
            ["output_tokens"] = _completion,
            ["output_tokens_details"] = new JsonObject { ["reasoning_tokens"] = 0 },
            ["total_tokens"] = _prompt + _completion,
        } : null;
        return response;
    }

    private void Save(JsonObject response)
    {
        if (Request is not { Store: true } req)
        {
            return;
        }

        var history = (JsonArray)req.History.DeepClone();
        var assistant = new JsonObject { ["role"] = "assistant", ["content"] = _messageId.Length > 0 ? _text.ToString() : null };
        if (_calls.Count > 0)
        {
            var calls = new JsonArray();
            foreach (var c in _calls)
            {
                calls.Add(new JsonObject { ["id"] = c.CallId, ["type"] = "function", ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Args.ToString() } });
            }

            assistant["tool_calls"] = calls;
        }

        history.Add(assistant);
        PendingStore = _store.PutAsync(TenantPath, new StoredResponse(req.ResponseId, req.SessionKey, Encoding.UTF8.GetBytes(history.ToJsonString()), Encoding.UTF8.GetBytes(response.ToJsonString())));
    }

    private JsonObject MessageItem(string status) => new()
    {
        ["id"] = _messageId,
        ["type"] = "message",
        ["status"] = status,
        ["role"] = "assistant",
        ["content"] = new JsonArray(TextPart(_text.ToString())),
    };

    private JsonObject CallItem(int slot, string status)
    {
        var item = new JsonObject
        {
            ["id"] = _calls[slot].ItemId,
            ["type"] = "function_call",
            ["status"] = status,
            ["call_id"] = _calls[slot].CallId,
            ["name"] = _calls[slot].Name,
            ["arguments"] = status == "completed" ? _calls[slot].Args.ToString() : "",
        };
        if (Request?.Namespaces.TryGetValue(_calls[slot].Name, out var ns) == true)
        {
            item["namespace"] = ns;
        }

        return item;
    }

    private static JsonObject TextPart(string text) => new() { ["type"] = "output_text", ["text"] = text, ["annotations"] = new JsonArray(), ["logprobs"] = new JsonArray() };

    private void ReadUsage(JsonElement usage)
    {
        _prompt = Int(usage, "prompt_tokens");
        _completion = Int(usage, "completion_tokens");
        _cached = usage.TryGetProperty("prompt_tokens_details", out var d) && d.ValueKind == JsonValueKind.Object ? Int(d, "cached_tokens") : 0;
    }

    private static int Int(JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : 0;

    /// <summary>A new id with <paramref name="prefix"/> (resp_, msg_, fc_, call_).</summary>
    public static string NewId(string prefix) => prefix + Guid.NewGuid().ToString("N");

    private void Event(IBufferWriter<byte> output, JsonObject evt)
    {
        evt["sequence_number"] = _sequence++;
        output.Write("event: "u8);
        output.Write(Encoding.UTF8.GetBytes(evt["type"]!.GetValue<string>()));
        output.Write("\ndata: "u8);
        output.Write(Encoding.UTF8.GetBytes(evt.ToJsonString()));
        output.Write("\n\n"u8);
    }
}
