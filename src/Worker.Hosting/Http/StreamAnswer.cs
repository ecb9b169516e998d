using System.Text.Json;
using System.Threading.Channels;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>A streamed answer: one SSE chunk per engine token, flushed when its step completes.</summary>
internal sealed class StreamAnswer
{
    private readonly WorkerContext _w;

    public StreamAnswer(WorkerContext context) => _w = context;

    /// <summary>Streaming: one SSE chunk per engine token, flushed when its step completes. True when finished.</summary>
    public async Task<bool> StreamAsync(HttpContext ctx, PreparedRequest p, ChannelReader<SequenceEvent> events)
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
                        var err = JsonAnswer.EngineFailure(e.Kind);
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
            sse.Write(JsonAnswer.EngineFailure(null).WriteTo);
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
                JsonAnswer.WriteUsage(w, p, cached);
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
        EndChoiceAndChunk(w, includeUsage, finishReason);
    }

    private void WriteCompletionChunk(Utf8JsonWriter w, PreparedRequest p, bool includeUsage, string text, string? finishReason)
    {
        w.WriteStartObject();
        WriteChunkHeader(w, p, chat: false);
        w.WriteStartArray("choices");
        w.WriteStartObject();
        w.WriteString("text", text);
        w.WriteNumber("index", 0);
        EndChoiceAndChunk(w, includeUsage, finishReason);
    }

    /// <summary>The tail both chunk kinds share: logprobs, finish_reason, the end of the one choice, usage null.</summary>
    private static void EndChoiceAndChunk(Utf8JsonWriter w, bool includeUsage, string? finishReason)
    {
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
