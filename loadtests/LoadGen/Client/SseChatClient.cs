using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using LoadGen.Metrics;

namespace LoadGen.Client;

/// <summary>
/// Sends one streaming <c>/v1/chat/completions</c> request and measures it the way vLLM's <c>bench serve</c>
/// does: TTFT = send → first chunk carrying content (or a tool call), ITL = gaps between later content chunks,
/// TPOT = (E2E − TTFT) / (output tokens − 1), E2E = send → <c>[DONE]</c>. Reads the response with
/// <see cref="HttpCompletionOption.ResponseHeadersRead"/> and parses <c>data:</c> lines as they arrive.
/// Never throws for a request's failure: every call returns a result whose outcome is Ok or Error with a reason.
/// </summary>
public sealed class SseChatClient
{
    private static readonly byte[] DataPrefix = "data:"u8.ToArray();

    private readonly HttpClient _http;
    private readonly Uri _endpoint;

    /// <summary>Creates a client for <paramref name="baseUrl"/> (e.g. <c>http://127.0.0.1:8080</c>).</summary>
    public SseChatClient(HttpClient http, Uri baseUrl, string model, ClientTimeouts timeouts)
    {
        _http = http;
        _endpoint = new Uri(baseUrl, "v1/chat/completions");
        Model = model;
        Timeouts = timeouts;
    }

    /// <summary>Model id sent in every request.</summary>
    public string Model { get; }

    /// <summary>Client-side limits.</summary>
    public ClientTimeouts Timeouts { get; }

    /// <summary>A handler suited to load generation: unbounded connections per server, no proxy, no cookies.</summary>
    public static HttpClient CreateHttpClient() =>
        new(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = int.MaxValue,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            UseProxy = false,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(10),
            AutomaticDecompression = DecompressionMethods.None,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan, // per-request limits are ours (ClientTimeouts)
        };

    /// <summary>The JSON body for <paramref name="request"/>.</summary>
    public byte[] BuildBody(ChatRequest request)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("model", Model);
            ChatJson.WriteMessages(w, request.Messages);
            ChatJson.WriteTools(w, request.Tools);
            if (request.ToolChoice is not null)
            {
                w.WriteString("tool_choice", request.ToolChoice);
            }

            if (request.Seed is long seed)
            {
                w.WriteNumber("seed", seed);
            }

            w.WriteNumber("max_tokens", request.MaxTokens);
            w.WriteBoolean("stream", true);
            w.WriteStartObject("stream_options");
            w.WriteBoolean("include_usage", true);
            w.WriteEndObject();
            if (request.User is not null)
            {
                w.WriteString("user", request.User);
            }

            if (request.IgnoreEos)
            {
                w.WriteBoolean("ignore_eos", true);
            }

            w.WriteEndObject();
        }

        return ms.ToArray();
    }

    /// <summary>Sends <paramref name="request"/>; fills and returns <paramref name="result"/>. Cancelling
    /// <paramref name="runAborted"/> ends it with reason <c>cancelled</c>.</summary>
    public async Task<RequestResult> SendAsync(ChatRequest request, RequestResult result, CancellationToken runAborted)
    {
        long start = Stopwatch.GetTimestamp();
        using var total = CancellationTokenSource.CreateLinkedTokenSource(runAborted);
        total.CancelAfter(Timeouts.Total);
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(total.Token);
        idle.CancelAfter(Timeouts.FirstToken);
        var ct = idle.Token;
        string phase = "first_token";
        try
        {
            using var msg = new HttpRequestMessage(HttpMethod.Post, _endpoint)
            {
                Content = new ByteArrayContent(BuildBody(request)),
                Version = HttpVersion.Version11,
            };
            msg.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            msg.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/event-stream"));
            if (request.Tenant.ApiKey is { Length: > 0 } key)
            {
                msg.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
            }

            if (request.SessionId is not null)
            {
                msg.Headers.TryAddWithoutValidation("x-session-id", request.SessionId);
            }

            if (request.ParentSessionId is not null)
            {
                msg.Headers.TryAddWithoutValidation("x-parent-session-id", request.ParentSessionId);
            }

            using var response = await _http.SendAsync(msg, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            result.HttpStatus = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
            {
                string code = await ReadErrorCodeAsync(response, ct).ConfigureAwait(false);
                return Fail(result, start, $"http_{(int)response.StatusCode}" + (code.Length > 0 ? ":" + code : ""));
            }

            await using var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            bool isSse = response.Content.Headers.ContentType?.MediaType == "text/event-stream";
            if (!isSse)
            {
                return await ReadJsonBodyAsync(stream, result, start, ct).ConfigureAwait(false);
            }

            var reader = new SseLineReader(stream);
            long lastChunk = 0;
            var content = new StringBuilder();
            while (true)
            {
                var line = await reader.ReadLineAsync(ct).ConfigureAwait(false);
                if (line is null)
                {
                    return Fail(result, start, result.Chunks == 0 ? "stream_closed_before_first_token" : "stream_closed_before_done");
                }

                ReadOnlyMemory<byte> data = line.Value;
                if (!data.Span.StartsWith(DataPrefix))
                {
                    continue; // comments, event:, id:, blank separators
                }

                data = data[DataPrefix.Length..];
                if (data.Length > 0 && data.Span[0] == (byte)' ')
                {
                    data = data[1..];
                }

                if (data.Span.SequenceEqual("[DONE]"u8))
                {
                    break;
                }

                var chunk = ParseChunk(data.Span, result);
                if (chunk.Error is not null)
                {
                    return Fail(result, start, "stream_error:" + chunk.Error);
                }

                if (chunk.HasOutput)
                {
                    long now = Stopwatch.GetTimestamp();
                    if (result.Chunks == 0)
                    {
                        result.TtftMs = Stopwatch.GetElapsedTime(start, now).TotalMilliseconds;
                        phase = "stream";
                    }
                    else
                    {
                        result.ItlMs.Add(Stopwatch.GetElapsedTime(lastChunk, now).TotalMilliseconds);
                    }

                    lastChunk = now;
                    result.Chunks++;
                    content.Append(chunk.Text);
                }

                // Between chunks the idle limit applies; it restarts with every chunk.
                idle.CancelAfter(result.Chunks == 0 ? Timeouts.FirstToken : Timeouts.Idle);
            }

            result.E2eMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (result.OutputTokens == 0)
            {
                result.OutputTokens = result.Chunks;
            }

            if (result.TtftMs is double ttft && result.OutputTokens > 1)
            {
                result.TpotMs = (result.E2eMs - ttft) / (result.OutputTokens - 1);
            }

            result.Content = content.ToString();
            result.Outcome = Outcome.Ok;
            result.ErrorReason = null;
            return result;
        }
        catch (OperationCanceledException) when (runAborted.IsCancellationRequested)
        {
            return Fail(result, start, "cancelled_at_run_end");
        }
        catch (OperationCanceledException) when (total.IsCancellationRequested)
        {
            return Fail(result, start, "timeout_total");
        }
        catch (OperationCanceledException)
        {
            return Fail(result, start, phase == "first_token" ? "timeout_first_token" : "timeout_idle");
        }
        catch (HttpRequestException e)
        {
            return Fail(result, start, ClassifyNetwork(e, result.HttpStatus == 0 ? "connect" : "stream"));
        }
        catch (IOException e)
        {
            return Fail(result, start, ClassifyNetwork(e, result.HttpStatus == 0 ? "connect" : "stream"));
        }
#pragma warning disable CA1031 // a load generator records every failure as an outcome instead of crashing the run
        catch (Exception e)
        {
            return Fail(result, start, "client_exception:" + e.GetType().Name);
        }
#pragma warning restore CA1031
    }

    private static string ClassifyNetwork(Exception e, string phase)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            if (x is SocketException se)
            {
                return se.SocketErrorCode switch
                {
                    SocketError.ConnectionRefused => "connect_refused",
                    SocketError.ConnectionReset => phase + "_reset",
                    SocketError.TimedOut => phase + "_timeout",
                    _ => phase + "_socket_" + se.SocketErrorCode,
                };
            }
        }

        if (e is HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded })
        {
            return phase + "_ended";
        }

        return phase == "connect" ? "connect_error" : "stream_broken";
    }

    private static RequestResult Fail(RequestResult result, long start, string reason)
    {
        result.E2eMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        result.Outcome = Outcome.Error;
        result.ErrorReason = reason;
        return result;
    }

    private static async Task<string> ReadErrorCodeAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            byte[] body = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("error", out var err) && err.ValueKind == JsonValueKind.Object)
            {
                if (err.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String)
                {
                    return code.GetString() ?? "";
                }

                if (err.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String)
                {
                    return type.GetString() ?? "";
                }
            }
        }
        catch (JsonException)
        {
        }
        catch (HttpRequestException)
        {
        }
        catch (IOException)
        {
        }

        return "";
    }

    private static async Task<RequestResult> ReadJsonBodyAsync(Stream stream, RequestResult result, long start, CancellationToken ct)
    {
        // A server that ignores stream=true: one JSON body. TTFT = E2E (nothing streamed).
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms, ct).ConfigureAwait(false);
        result.E2eMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        try
        {
            using var doc = JsonDocument.Parse(ms.ToArray());
            var root = doc.RootElement;
            ReadUsage(root, result);
            if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array && choices.GetArrayLength() > 0 &&
                choices[0].TryGetProperty("message", out var message) && message.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
            {
                result.Content = c.GetString() ?? "";
                result.TtftMs = result.E2eMs;
                result.Chunks = 1;
                result.Outcome = Outcome.Ok;
                result.ErrorReason = null;
                return result;
            }
        }
        catch (JsonException)
        {
        }

        return Fail(result, start, "malformed_body");
    }

    private readonly record struct Chunk(bool HasOutput, string Text, string? Error);

    private static Chunk ParseChunk(ReadOnlySpan<byte> json, RequestResult result)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new Chunk(false, "", "malformed_chunk");
            }

            if (root.TryGetProperty("error", out var err))
            {
                string code = err.ValueKind == JsonValueKind.Object && err.TryGetProperty("code", out var c) && c.ValueKind == JsonValueKind.String
                    ? c.GetString() ?? "error"
                    : err.ValueKind == JsonValueKind.Object && err.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() ?? "error" : "error";
                return new Chunk(false, "", code);
            }

            ReadUsage(root, result);
            if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0)
            {
                return default;
            }

            var choice = choices[0];
            if (choice.TryGetProperty("finish_reason", out var fr) && fr.ValueKind == JsonValueKind.String)
            {
                result.FinishReason = fr.GetString();
            }

            if (choice.TryGetProperty("delta", out var delta) && delta.ValueKind == JsonValueKind.Object)
            {
                if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String && content.GetString() is { Length: > 0 } text)
                {
                    return new Chunk(true, text, null);
                }

                if (delta.TryGetProperty("tool_calls", out var tc) && tc.ValueKind == JsonValueKind.Array && tc.GetArrayLength() > 0)
                {
                    AddToolCallDeltas(tc, result);
                    return new Chunk(true, "", null);
                }

                if (delta.TryGetProperty("reasoning_content", out var rc) && rc.ValueKind == JsonValueKind.String && rc.GetString() is { Length: > 0 })
                {
                    return new Chunk(true, "", null);
                }
            }
            else if (choice.TryGetProperty("text", out var ptext) && ptext.ValueKind == JsonValueKind.String && ptext.GetString() is { Length: > 0 } t2)
            {
                return new Chunk(true, t2, null); // /v1/completions shape
            }

            return default;
        }
        catch (JsonException)
        {
            return new Chunk(false, "", "malformed_chunk");
        }
    }

    /// <summary>Streamed tool calls arrive in pieces: the first delta of call <c>index</c> carries its id and name,
    /// later ones append to <c>function.arguments</c>.</summary>
    private static void AddToolCallDeltas(JsonElement deltas, RequestResult result)
    {
        foreach (var d in deltas.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Object)
            {
                continue;
            }

            int index = d.TryGetProperty("index", out var ix) && ix.TryGetInt32(out int i) ? i : result.ToolCalls.Count;
            if (index < 0 || index > result.ToolCalls.Count || index >= MaxToolCalls)
            {
                continue; // out of order or absurd: ignore rather than guess
            }

            var f = d.TryGetProperty("function", out var fn) && fn.ValueKind == JsonValueKind.Object ? fn : default;
            string? id = d.TryGetProperty("id", out var idEl) && idEl.ValueKind == JsonValueKind.String ? idEl.GetString() : null;
            string? name = f.ValueKind == JsonValueKind.Object && f.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
            string args = f.ValueKind == JsonValueKind.Object && f.TryGetProperty("arguments", out var a) && a.ValueKind == JsonValueKind.String ? a.GetString() ?? "" : "";
            if (index == result.ToolCalls.Count)
            {
                result.ToolCalls.Add(new ToolCall(id ?? $"call_{index}", name ?? "", args));
            }
            else
            {
                var c = result.ToolCalls[index];
                result.ToolCalls[index] = c with { Id = id ?? c.Id, Name = name ?? c.Name, Arguments = c.Arguments + args };
            }
        }
    }

    private const int MaxToolCalls = 64;

    private static void ReadUsage(JsonElement root, RequestResult result)
    {
        if (!root.TryGetProperty("usage", out var usage) || usage.ValueKind != JsonValueKind.Object)
        {
            return;
        }

        if (usage.TryGetProperty("prompt_tokens", out var p) && p.TryGetInt32(out int pt))
        {
            result.PromptTokens = pt;
        }

        if (usage.TryGetProperty("completion_tokens", out var c) && c.TryGetInt32(out int ct))
        {
            result.OutputTokens = ct;
        }

        if (usage.TryGetProperty("prompt_tokens_details", out var d) && d.ValueKind == JsonValueKind.Object &&
            d.TryGetProperty("cached_tokens", out var cached) && cached.TryGetInt32(out int cc))
        {
            result.CachedTokens = cc;
        }
    }
}

/// <summary>Client-side limits of one request.</summary>
public sealed record ClientTimeouts(TimeSpan FirstToken, TimeSpan Idle, TimeSpan Total)
{
    /// <summary>60 s to the first token, 30 s between chunks, 120 s in all.</summary>
    public static ClientTimeouts Default { get; } = new(TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(120));
}
