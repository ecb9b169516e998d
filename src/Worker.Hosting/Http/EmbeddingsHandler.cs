using System.Runtime.InteropServices;
using Llm.Prompt.OpenAi;
using Llm.Prompt.Tokenization;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>/v1/embeddings of the reference worker: deterministic vectors from the tokens, no engine time.</summary>
internal sealed class EmbeddingsHandler
{
    /// <summary>Most embedding values (inputs × dimensions) one response may hold (bounds response size).</summary>
    public const long MaxEmbeddingValues = 4 * 1024 * 1024;

    private readonly WorkerContext _w;

    public EmbeddingsHandler(WorkerContext context) => _w = context;

    /// <summary>/v1/embeddings.</summary>
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
                await HttpJson.WriteErrorAsync(ctx, RequestPreparer.ContextExceeded(_w.MaxModelLength, n, 0, "input")).ConfigureAwait(false);
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
}
