using System.Text.Json;
using System.Threading.Channels;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>A non-streamed answer: waits for the engine to finish the sequence and writes one JSON body.</summary>
internal sealed class JsonAnswer
{
    private readonly WorkerContext _w;

    public JsonAnswer(WorkerContext context) => _w = context;

    /// <summary>Non-streaming: waits for Finished and writes one JSON body. True when the request finished.</summary>
    public async Task<bool> CompleteAsync(HttpContext ctx, PreparedRequest p, ChannelReader<SequenceEvent> events)
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

    /// <summary>The error for a sequence the engine ended without finishing it.</summary>
    public static OpenAiError EngineFailure(SequenceEventKind? kind) => kind switch
    {
        SequenceEventKind.Rejected => new OpenAiError(503, "The worker's engine rejected the request (it could not be scheduled).", "server_error", null, "engine_rejected"),
        SequenceEventKind.Aborted => new OpenAiError(503, "The request was aborted by the worker's engine.", "server_error", null, "engine_aborted"),
        _ => new OpenAiError(503, "The worker is shutting down.", "server_error", null, "worker_shutting_down"),
    };

    /// <summary>The OpenAI <c>usage</c> object of a prepared request.</summary>
    public static void WriteUsage(Utf8JsonWriter w, PreparedRequest p, int cached)
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
}
