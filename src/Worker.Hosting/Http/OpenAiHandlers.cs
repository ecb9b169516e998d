using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Threading.Channels;
using Gateway.Core.Hashing;
using Gateway.Core.OpenAi;
using Gateway.Core.Tokenization;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>
/// The OpenAI surface of the reference worker: chat completions and completions (through the engine, streamed or
/// not), embeddings (deterministic vectors, no engine time) and models.
/// </summary>
internal sealed class OpenAiHandlers
{
    /// <summary>Largest |priority| accepted in <see cref="WorkerHeaders.RequestPriority"/>.</summary>
    public const int MaxPriority = 1000;

    /// <summary>Most embedding values (inputs × dimensions) one response may hold (bounds response size).</summary>
    public const long MaxEmbeddingValues = 4 * 1024 * 1024;

    private readonly WorkerContext _w;

    public OpenAiHandlers(WorkerContext context) => _w = context;

    public async Task ModelsAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "GET")).ConfigureAwait(false);
            return;
        }

        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            WriteModel(w);
            w.WriteEndArray();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    public async Task ModelAsync(HttpContext ctx, string id)
    {
        if (!HttpMethods.IsGet(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "GET")).ConfigureAwait(false);
            return;
        }

        if (!_w.ServesModel(id))
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.ModelNotFound(id)).ConfigureAwait(false);
            return;
        }

        await HttpJson.WriteJsonAsync(ctx, 200, WriteModel).ConfigureAwait(false);
    }

    private void WriteModel(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("id", _w.ServedModel);
        w.WriteString("object", "model");
        w.WriteNumber("created", _w.Created);
        w.WriteString("owned_by", "reference-worker");
        w.WriteNumber("max_model_len", _w.MaxModelLength);
        w.WriteEndObject();
    }

    public async Task EmbeddingsAsync(HttpContext ctx)
    {
        if (!HttpMethods.IsPost(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "POST")).ConfigureAwait(false);
            return;
        }

        var (body, readError) = await HttpJson.ReadBodyAsync(ctx, _w.Options.MaxRequestBodyBytes).ConfigureAwait(false);
        if (readError is not null)
        {
            await HttpJson.WriteErrorAsync(ctx, readError).ConfigureAwait(false);
            return;
        }

        if (!OpenAiRequestParser.TryParse(body, OpenAiEndpoint.Embeddings, out var req, out var error)
            || !BodyExtras.TryRead(body, out var extras, out error))
        {
            await HttpJson.WriteErrorAsync(ctx, error!).ConfigureAwait(false);
            return;
        }

        if (!_w.ServesModel(req!.Model))
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.ModelNotFound(req.Model)).ConfigureAwait(false);
            return;
        }

        int dims = extras.Dimensions ?? _w.Options.EmbeddingDimensions;
        if ((long)dims * req.EmbeddingInputs.Count > MaxEmbeddingValues)
        {
            await HttpJson.WriteErrorAsync(ctx, OpenAiError.Invalid(
                $"The response would hold {(long)dims * req.EmbeddingInputs.Count} values; at most {MaxEmbeddingValues} (inputs × dimensions) per request.", "input")).ConfigureAwait(false);
            return;
        }

        bool base64 = extras.EncodingFormat == "base64";
        long tokens = 0;
        foreach (var input in req.EmbeddingInputs)
        {
            int n = (_w.Compute is null ? _w.PromptTokenizer : DefaultTokenizer.Instance).CountTokens(input);
            if (n > _w.MaxModelLength)
            {
                await HttpJson.WriteErrorAsync(ctx, ContextExceeded(_w.MaxModelLength, n, 0, "input")).ConfigureAwait(false);
                return;
            }

            tokens += n;
        }

        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            for (int i = 0; i < req.EmbeddingInputs.Count; i++)
            {
                var v = EmbeddingGenerator.Embed(req.EmbeddingInputs[i], dims);
                w.WriteStartObject();
                w.WriteString("object", "embedding");
                w.WriteNumber("index", i);
                if (base64)
                {
                    w.WriteBase64String("embedding", MemoryMarshal.AsBytes(v.AsSpan()));
                }
                else
                {
                    w.WriteStartArray("embedding");
                    foreach (float f in v)
                    {
                        w.WriteNumberValue(f);
                    }

                    w.WriteEndArray();
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteString("model", _w.ServedModel);
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", tokens);
            w.WriteNumber("total_tokens", tokens);
            w.WriteEndObject();
            w.WriteEndObject();
        }).ConfigureAwait(false);
    }

    /// <summary>/v1/chat/completions and /v1/completions.</summary>
    public async Task GenerateAsync(HttpContext ctx, OpenAiEndpoint endpoint)
    {
        if (!HttpMethods.IsPost(ctx.Request.Method))
        {
            await HttpJson.WriteErrorAsync(ctx, HttpJson.MethodNotAllowed(ctx, "POST")).ConfigureAwait(false);
            return;
        }

        if (_w.Draining)
        {
            ctx.Response.Headers.RetryAfter = "1";
            ctx.Response.Headers[WorkerHeaders.WorkerDraining] = "true";
            await HttpJson.WriteErrorAsync(ctx, HttpJson.Draining).ConfigureAwait(false);
            return;
        }

        var (body, readError) = await HttpJson.ReadBodyAsync(ctx, _w.Options.MaxRequestBodyBytes).ConfigureAwait(false);
        if (readError is not null)
        {
            await HttpJson.WriteErrorAsync(ctx, readError).ConfigureAwait(false);
            return;
        }

        var prepared = Prepare(ctx, body!, endpoint, out var error);
        if (prepared is null)
        {
            await HttpJson.WriteErrorAsync(ctx, error!).ConfigureAwait(false);
            return;
        }

        if (!_w.Loop.TrySubmit(prepared.Engine, out var events, out string? refusal))
        {
            await HttpJson.WriteErrorAsync(ctx, new OpenAiError(400, refusal ?? "The request cannot be served by this worker.", "invalid_request_error", "messages", "context_length_exceeded")).ConfigureAwait(false);
            return;
        }

        var loop = _w.Loop;
        string id = prepared.Engine.Id;
        bool finished = false;
        using (ctx.RequestAborted.Register(() => loop.Abort(id)))
        using (_w.Cut.Register(() => loop.Abort(id)))
        {
            try
            {
                finished = prepared.Request.Stream
                    ? await StreamAsync(ctx, prepared, events!).ConfigureAwait(false)
                    : await CompleteAsync(ctx, prepared, events!).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
            {
                // client went away mid-response
            }
            finally
            {
                if (!finished)
                {
                    loop.Abort(id);
                }
            }
        }
    }

    /// <summary>A validated request ready for the engine, with everything needed to render its response.</summary>
    /// <summary><see cref="Generated"/> is set when the backend computes real tokens (the cpu backend); then <see cref="Plan"/> is empty.</summary>
    private sealed record PreparedRequest(OpenAiRequest Request, EngineRequest Engine, OutputPlan Plan, long Created, long? RetentionTtlMs, GeneratedText? Generated = null)
    {
        public string FinishReason => Generated?.FinishReason ?? Plan.FinishReason;

        public int CompletionTokens => Generated?.Tokens ?? Plan.OutputTokens;

        public string Content() => Generated?.Text ?? Plan.Content();
    }

    /// <summary>The plan of a real-token request: no invented pieces.</summary>
    private static readonly OutputPlan NoPlan = new() { Pieces = [], Offsets = [], ContentLength = 0, FinishReason = "length" };

    private PreparedRequest? Prepare(HttpContext ctx, byte[] body, OpenAiEndpoint endpoint, out OpenAiError? error)
    {
        if (!OpenAiRequestParser.TryParse(body, endpoint, out var req, out error) || !BodyExtras.TryRead(body, out var extras, out error))
        {
            return null;
        }

        if (!_w.ServesModel(req!.Model))
        {
            error = OpenAiError.ModelNotFound(req.Model);
            return null;
        }

        if (req.N != 1)
        {
            error = OpenAiError.Invalid($"This worker supports only n=1, got n={req.N}.", "n", "unsupported_value");
            return null;
        }

        if (endpoint == OpenAiEndpoint.ChatCompletions && (error = ToolCallRule.Validate(req)) is not null)
        {
            return null;
        }

        bool real = _w.Compute is not null;
        if (real && req.ToolNames.Count > 0)
        {
            error = OpenAiError.Invalid($"The {_w.Compute!.Name} backend generates plain text; tools are not supported.", "tools", "unsupported_value");
            return null;
        }

        long? ttl = null;
        if (ctx.Request.Headers.TryGetValue(WorkerHeaders.RetentionTtl, out var ttlValues))
        {
            if (!long.TryParse(ttlValues.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long t) || t < 0 || t > 86_400_000)
            {
                error = OpenAiError.Invalid($"Header '{WorkerHeaders.RetentionTtl}' must be an integer number of milliseconds in [0, 86400000].", WorkerHeaders.RetentionTtl);
                return null;
            }

            ttl = t;
        }

        int priority = 0;
        if (ctx.Request.Headers.TryGetValue(WorkerHeaders.RequestPriority, out var priorityValues) &&
            (!int.TryParse(priorityValues.ToString(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out priority) || Math.Abs(priority) > MaxPriority))
        {
            error = OpenAiError.Invalid($"Header '{WorkerHeaders.RequestPriority}' must be an integer in [-{MaxPriority}, {MaxPriority}].", WorkerHeaders.RequestPriority);
            return null;
        }

        var tokens = new List<int>(Math.Max(16, req.PromptText.Length / 4));
        _w.PromptTokenizer.Encode(req.PromptText, tokens);
        int promptTokens = tokens.Count;
        int maxLen = _w.MaxModelLength;
        if (promptTokens >= maxLen)
        {
            error = ContextExceeded(maxLen, promptTokens, null, endpoint == OpenAiEndpoint.ChatCompletions ? "messages" : "prompt");
            return null;
        }

        int room = maxLen - promptTokens;
        if (req.MaxTokens is int mt && mt > room)
        {
            error = ContextExceeded(maxLen, promptTokens, mt, "max_tokens");
            return null;
        }

        ulong seed = OutputPlanner.SeedOf(req.Seed ?? _w.Options.Seed, req.PromptText);
        OutputPlan plan = NoPlan;
        string? function = null;
        ToolCallRule.ToolContext? tools = null;
        if (endpoint == OpenAiEndpoint.ChatCompletions && req.ToolNames.Count > 0)
        {
            tools = ToolCallRule.ReadContext(body);
            function = ToolCallRule.Decide(req, tools.ToolResults, seed, _w.Options.MaxToolResults, tools.LastTurnRole);
        }

        if (function is not null)
        {
            string args = ToolCallRule.Arguments(tools!.Schemas.GetValueOrDefault(function), seed);
            plan = OutputPlanner.PlanToolCall(seed, function, args, req.MaxTokens, room);
        }
        else if (!real)
        {
            plan = _w.Planner.PlanText(seed, req.MaxTokens, room, req.Stop);
        }

        string? saltText = ctx.Request.Headers.TryGetValue(WorkerHeaders.CacheSalt, out var saltHeader) ? saltHeader.ToString() : extras.CacheSalt;
        ulong salt = BlockHasher.SaltOf(saltText);
        var hashes = BlockHasher.ComputeChain(CollectionsMarshal.AsSpan(tokens), salt, _w.Options.BlockSize);
        string? session = ctx.Request.Headers.TryGetValue(WorkerHeaders.SessionId, out var s) && s.ToString().Length > 0 ? s.ToString() : null;
        var engineRequest = new EngineRequest
        {
            Id = _w.NextId(endpoint == OpenAiEndpoint.ChatCompletions ? "chatcmpl" : "cmpl"),
            PromptTokens = promptTokens,
            BlockHashes = hashes,
            PromptTokenIds = real ? [.. tokens] : null,
            Temperature = real ? (float)(extras.Temperature ?? 1.0) : 0, // OpenAI's default temperature is 1
            SamplingSeed = seed,
            // Real tokens: max_tokens, else the output cap; the model's end-of-sequence token may stop sooner.
            OutputTokens = real ? req.MaxTokens ?? Math.Min(room, _w.Options.OutputLengthMax) : plan.OutputTokens,
            SessionId = session,
            Priority = priority,
            RetentionTtlMs = ttl is long keep ? (int)keep : 0,
        };
        return new PreparedRequest(req, engineRequest, plan, _w.Options.TimeProvider.GetUtcNow().ToUnixTimeSeconds(), ttl, real ? new GeneratedText(req.Stop) : null);
    }

    private static OpenAiError ContextExceeded(int maxLen, int promptTokens, int? completion, string param) =>
        completion is int c
            ? new OpenAiError(400,
                $"This model's maximum context length is {maxLen} tokens. However, you requested {(long)promptTokens + c} tokens ({promptTokens} in the messages, {c} in the completion). Please reduce the length of the messages or completion.",
                "invalid_request_error", param, "context_length_exceeded")
            : new OpenAiError(400,
                $"This model's maximum context length is {maxLen} tokens. However, your messages resulted in {promptTokens} tokens. Please reduce the length of the messages.",
                "invalid_request_error", param, "context_length_exceeded");

    /// <summary>Non-streaming: waits for Finished and writes one JSON body. True when the request finished.</summary>
    private async Task<bool> CompleteAsync(HttpContext ctx, PreparedRequest p, ChannelReader<SequenceEvent> events)
    {
        int cached = 0;
        SequenceEventKind? terminal = null;
        await foreach (var e in events.ReadAllAsync(ctx.RequestAborted).ConfigureAwait(false))
        {
            if (e.Kind is SequenceEventKind.FirstToken or SequenceEventKind.Token)
            {
                p.Generated?.Append(e.TokenId);
                if (e.Kind == SequenceEventKind.FirstToken)
                {
                    cached = e.CachedTokens;
                }

                if (p.Generated is { Stopped: true })
                {
                    // A stop sequence ended the text: the engine need not generate the rest.
                    _w.Loop.Abort(p.Engine.Id);
                    terminal = SequenceEventKind.Finished;
                    break;
                }
            }
            else if (e.Kind is SequenceEventKind.Finished or SequenceEventKind.Aborted or SequenceEventKind.Rejected)
            {
                terminal = e.Kind;
                cached = Math.Max(cached, e.CachedTokens);
                p.Generated?.Finish(e.Reason);
            }
        }

        if (terminal != SequenceEventKind.Finished)
        {
            if (!ctx.RequestAborted.IsCancellationRequested)
            {
                await HttpJson.WriteErrorAsync(ctx, EngineFailure(terminal)).ConfigureAwait(false);
            }

            return false;
        }

        var plan = p.Plan;
        await HttpJson.WriteJsonAsync(ctx, 200, w =>
        {
            w.WriteStartObject();
            w.WriteString("id", p.Engine.Id);
            bool chat = p.Request.Endpoint == OpenAiEndpoint.ChatCompletions;
            w.WriteString("object", chat ? "chat.completion" : "text_completion");
            w.WriteNumber("created", p.Created);
            w.WriteString("model", _w.ServedModel);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", 0);
            if (chat)
            {
                w.WriteStartObject("message");
                w.WriteString("role", "assistant");
                if (plan.ToolCall is { } call)
                {
                    w.WriteNull("content");
                    w.WriteNull("refusal");
                    w.WriteStartArray("tool_calls");
                    w.WriteStartObject();
                    w.WriteString("id", call.Id);
                    w.WriteString("type", "function");
                    w.WriteStartObject("function");
                    w.WriteString("name", call.Name);
                    w.WriteString("arguments", call.Arguments);
                    w.WriteEndObject();
                    w.WriteEndObject();
                    w.WriteEndArray();
                }
                else
                {
                    w.WriteString("content", p.Content());
                    w.WriteNull("refusal");
                }

                w.WriteEndObject();
            }
            else
            {
                w.WriteString("text", p.Content());
            }

            w.WriteNull("logprobs");
            w.WriteString("finish_reason", p.FinishReason);
            w.WriteEndObject();
            w.WriteEndArray();
            WriteUsage(w, p, cached);
            w.WriteEndObject();
        }).ConfigureAwait(false);
        return true;
    }

    private static OpenAiError EngineFailure(SequenceEventKind? kind) => kind switch
    {
        SequenceEventKind.Rejected => new OpenAiError(503, "The worker's engine rejected the request (it could not be scheduled).", "server_error", null, "engine_rejected"),
        SequenceEventKind.Aborted => new OpenAiError(503, "The request was aborted by the worker's engine.", "server_error", null, "engine_aborted"),
        _ => new OpenAiError(503, "The worker is shutting down.", "server_error", null, "worker_shutting_down"),
    };

    private void WriteUsage(Utf8JsonWriter w, PreparedRequest p, int cached)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", p.Engine.PromptTokens);
        w.WriteNumber("completion_tokens", p.CompletionTokens);
        w.WriteNumber("total_tokens", p.Engine.PromptTokens + p.CompletionTokens);
        w.WriteStartObject("prompt_tokens_details");
        w.WriteNumber("cached_tokens", cached);
        w.WriteEndObject();
        w.WriteStartObject("completion_tokens_details");
        w.WriteNumber("reasoning_tokens", 0);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    /// <summary>Streaming: one SSE chunk per engine token, flushed when its step completes. True when finished.</summary>
    private async Task<bool> StreamAsync(HttpContext ctx, PreparedRequest p, ChannelReader<SequenceEvent> events)
    {
        var response = ctx.Response;
        response.StatusCode = 200;
        response.ContentType = "text/event-stream; charset=utf-8";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.StartAsync(ctx.RequestAborted).ConfigureAwait(false);

        var sse = new SseChunkWriter(response.BodyWriter);
        bool chat = p.Request.Endpoint == OpenAiEndpoint.ChatCompletions;
        bool includeUsage = p.Request.IncludeUsage;
        int cached = 0;
        var ct = ctx.RequestAborted;
        while (await events.WaitToReadAsync(ct).ConfigureAwait(false))
        {
            // Write everything this step delivered, then flush once.
            while (events.TryRead(out var e))
            {
                switch (e.Kind)
                {
                    case SequenceEventKind.FirstToken:
                    case SequenceEventKind.Token:
                        if (e.Kind == SequenceEventKind.FirstToken)
                        {
                            cached = e.CachedTokens;
                            if (chat && p.Plan.ToolCall is null)
                            {
                                sse.Write(w => WriteChunkStart(w, p, includeUsage, w2 =>
                                {
                                    w2.WriteString("role", "assistant");
                                    w2.WriteString("content", "");
                                    w2.WriteNull("refusal");
                                }, null));
                            }
                        }

                        if (p.Generated is { } generated)
                        {
                            WriteTextChunk(sse, p, generated.Append(e.TokenId), chat, includeUsage);
                            if (generated.Stopped)
                            {
                                // A stop sequence ended the text: the engine need not generate the rest.
                                _w.Loop.Abort(p.Engine.Id);
                                await FinishStreamAsync(sse, p, chat, includeUsage, cached, ct).ConfigureAwait(false);
                                return true;
                            }
                        }
                        else
                        {
                            WriteTokenChunk(sse, p, e.TokenIndex, chat, includeUsage);
                        }

                        break;
                    case SequenceEventKind.Finished:
                        cached = Math.Max(cached, e.CachedTokens);
                        if (p.Generated is { } done)
                        {
                            WriteTextChunk(sse, p, done.Finish(e.Reason), chat, includeUsage);
                        }

                        await FinishStreamAsync(sse, p, chat, includeUsage, cached, ct).ConfigureAwait(false);
                        return true;
                    default:
                        var err = EngineFailure(e.Kind);
                        sse.Write(err.WriteTo);
                        sse.WriteDone();
                        await sse.FlushAsync(ct).ConfigureAwait(false);
                        return false;
                }
            }

            await sse.FlushAsync(ct).ConfigureAwait(false);
        }

        if (!ct.IsCancellationRequested)
        {
            sse.Write(EngineFailure(null).WriteTo);
            sse.WriteDone();
            await sse.FlushAsync(ct).ConfigureAwait(false);
        }

        return false;
    }

    // The finish chunk, the usage chunk when asked for, [DONE].
    private async Task FinishStreamAsync(SseChunkWriter sse, PreparedRequest p, bool chat, bool includeUsage, int cached, CancellationToken ct)
    {
        sse.Write(w => WriteChunkStart(w, p, includeUsage, chat ? static _ => { } : null, p.FinishReason));
        if (includeUsage)
        {
            sse.Write(w =>
            {
                w.WriteStartObject();
                WriteChunkHeader(w, p, chat);
                w.WriteStartArray("choices");
                w.WriteEndArray();
                WriteUsage(w, p, cached);
                w.WriteEndObject();
            });
        }

        sse.WriteDone();
        await sse.FlushAsync(ct).ConfigureAwait(false);
    }

    private void WriteTokenChunk(SseChunkWriter sse, PreparedRequest p, int index, bool chat, bool includeUsage)
    {
        var plan = p.Plan;
        if (plan.ToolCall is { } call)
        {
            if (index == 0)
            {
                sse.Write(w => WriteChunkStart(w, p, includeUsage, d =>
                {
                    d.WriteString("role", "assistant");
                    d.WriteNull("content");
                    d.WriteNull("refusal");
                    d.WriteStartArray("tool_calls");
                    d.WriteStartObject();
                    d.WriteNumber("index", 0);
                    d.WriteString("id", call.Id);
                    d.WriteString("type", "function");
                    d.WriteStartObject("function");
                    d.WriteString("name", call.Name);
                    d.WriteString("arguments", "");
                    d.WriteEndObject();
                    d.WriteEndObject();
                    d.WriteEndArray();
                }, null));
            }
            else
            {
                string piece = (uint)index < (uint)plan.Pieces.Length ? plan.Pieces[index] : "";
                sse.Write(w => WriteChunkStart(w, p, includeUsage, d =>
                {
                    d.WriteStartArray("tool_calls");
                    d.WriteStartObject();
                    d.WriteNumber("index", 0);
                    d.WriteStartObject("function");
                    d.WriteString("arguments", piece);
                    d.WriteEndObject();
                    d.WriteEndObject();
                    d.WriteEndArray();
                }, null));
            }

            return;
        }

        WriteTextChunk(sse, p, plan.VisibleText(index), chat, includeUsage); // empty past a stop cut: nothing written
    }

    /// <summary>One content (chat) or text (completions) chunk; nothing for empty text.</summary>
    private void WriteTextChunk(SseChunkWriter sse, PreparedRequest p, string text, bool chat, bool includeUsage)
    {
        if (text.Length == 0)
        {
            return;
        }

        if (chat)
        {
            sse.Write(w => WriteChunkStart(w, p, includeUsage, d => d.WriteString("content", text), null));
        }
        else
        {
            sse.Write(w => WriteCompletionChunk(w, p, includeUsage, text, null));
        }
    }

    private void WriteChunkHeader(Utf8JsonWriter w, PreparedRequest p, bool chat)
    {
        w.WriteString("id", p.Engine.Id);
        w.WriteString("object", chat ? "chat.completion.chunk" : "text_completion");
        w.WriteNumber("created", p.Created);
        w.WriteString("model", _w.ServedModel);
    }

    /// <summary>
    /// A chat chunk with one choice whose delta is written by <paramref name="delta"/>; for /v1/completions
    /// (<paramref name="delta"/> null) a text chunk with empty text.
    /// </summary>
    private void WriteChunkStart(Utf8JsonWriter w, PreparedRequest p, bool includeUsage, Action<Utf8JsonWriter>? delta, string? finishReason)
    {
        if (delta is null)
        {
            WriteCompletionChunk(w, p, includeUsage, "", finishReason);
            return;
        }

        w.WriteStartObject();
        WriteChunkHeader(w, p, chat: true);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteNumber("index", 0);
        w.WriteStartObject("delta");
        delta(w);
        w.WriteEndObject();
        w.WriteNull("logprobs");
        if (finishReason is null) { w.WriteNull("finish_reason"); } else { w.WriteString("finish_reason", finishReason); }
        w.WriteEndObject();
        w.WriteEndArray();
        if (includeUsage)
        {
            w.WriteNull("usage");
        }

        w.WriteEndObject();
    }

    private void WriteCompletionChunk(Utf8JsonWriter w, PreparedRequest p, bool includeUsage, string text, string? finishReason)
    {
        w.WriteStartObject();
        WriteChunkHeader(w, p, chat: false);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteString("text", text);
        w.WriteNumber("index", 0);
        w.WriteNull("logprobs");
        if (finishReason is null) { w.WriteNull("finish_reason"); } else { w.WriteString("finish_reason", finishReason); }
        w.WriteEndObject();
        w.WriteEndArray();
        if (includeUsage)
        {
            w.WriteNull("usage");
        }

        w.WriteEndObject();
    }
}

/// <summary>Writes <c>data: {json}\n\n</c> SSE events straight into the response pipe.</summary>
internal sealed class SseChunkWriter
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();
    private readonly System.IO.Pipelines.PipeWriter _pipe;
    private readonly Utf8JsonWriter _json;

    public SseChunkWriter(System.IO.Pipelines.PipeWriter pipe)
    {
        _pipe = pipe;
        _json = new Utf8JsonWriter((IBufferWriter<byte>)pipe, HttpJson.WriterOptions);
    }

    public void Write(Action<Utf8JsonWriter> write)
    {
        _pipe.Write(DataPrefix);
        _json.Reset(_pipe);
        write(_json);
        _json.Flush();
        _pipe.Write(EventEnd);
    }

    /// <summary>Writes a named event (<c>event: NAME\ndata: {json}\n\n</c>).</summary>
    public void WriteEvent(string name, Action<Utf8JsonWriter> write)
    {
        _pipe.Write(System.Text.Encoding.UTF8.GetBytes("event: " + name + "\n"));
        Write(write);
    }

    /// <summary>An SSE comment line (keeps idle connections alive, detects gone clients).</summary>
    public void WriteComment(string text) => _pipe.Write(System.Text.Encoding.UTF8.GetBytes(": " + text + "\n\n"));

    public void WriteDone() => _pipe.Write(Done);

    public async ValueTask FlushAsync(CancellationToken ct)
    {
        var result = await _pipe.FlushAsync(ct).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            throw new OperationCanceledException("the client closed the stream");
        }
    }
}
