using System.Text.Json;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;


/// <summary>
/// The OpenAI surface of the reference worker: models, and chat completions and completions through the engine:
/// <see cref="RequestPreparer"/> (parse, validate, plan) → the engine loop → <see cref="JsonAnswer"/> or
/// <see cref="StreamAnswer"/>; embeddings in <see cref="EmbeddingsHandler"/>.
/// </summary>
internal sealed class OpenAiHandlers
{
    private readonly WorkerContext _w;
    private readonly RequestPreparer _preparer;
    private readonly JsonAnswer _json;
    private readonly StreamAnswer _stream;
    private readonly EmbeddingsHandler _embeddings;

    public OpenAiHandlers(WorkerContext context)
    {
        _w = context;
        _preparer = new RequestPreparer(context);
        _json = new JsonAnswer(context);
        _stream = new StreamAnswer(context);
        _embeddings = new EmbeddingsHandler(context);
    }

    /// <summary>/v1/embeddings (<see cref="EmbeddingsHandler"/>).</summary>
    public Task EmbeddingsAsync(HttpContext ctx) => _embeddings.EmbeddingsAsync(ctx);

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

        var prepared = _preparer.Prepare(ctx, body!, endpoint, out var error);
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
                    ? await _stream.StreamAsync(ctx, prepared, events!).ConfigureAwait(false)
                    : await _json.CompleteAsync(ctx, prepared, events!).ConfigureAwait(false);
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
}
