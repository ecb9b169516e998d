using System.Buffers;
using Gateway.Auth;
using Gateway.Core.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy;

/// <summary>Token counting without inference (Anthropic's <c>/v1/messages/count_tokens</c>).</summary>
public sealed partial class ProxyHandler
{
    /// <summary>
    /// Authenticates, reads and translates the body like <see cref="HandleAsync(HttpContext, OpenAiEndpoint, IRequestTranslation?)"/>,
    /// checks the model, and answers 200 with <paramref name="render"/>(prompt tokens) as counted by the gateway's
    /// tokenizer for that model (the count routing uses). No worker is asked.
    /// </summary>
    public async Task CountPromptTokensAsync(HttpContext context, IRequestTranslation translation, Func<int, byte[]> render)
    {
        var tenant = _auth.Authenticate(ApiCredential.Of(context.Request.Headers));
        try
        {
            if (tenant is null)
            {
                await OpenAiErrors.WriteAsync(context, OpenAiErrors.InvalidKey).ConfigureAwait(false);
                return;
            }

            var (buffer, length, readError) = await ReadBodyAsync(context).ConfigureAwait(false);
            if (readError is not null)
            {
                await OpenAiErrors.WriteAsync(context, readError).ConfigureAwait(false);
                return;
            }

            try
            {
                if (!translation.TryTranslate(buffer.AsMemory(0, length), tenant, out var body, out var error)
                    || !OpenAiRequestParser.TryParse(body, OpenAiEndpoint.ChatCompletions, out var request, out error))
                {
                    await OpenAiErrors.WriteAsync(context, error!).ConfigureAwait(false);
                    return;
                }

                var (model, modelError) = _models.Resolve(tenant, request!.Model, null, 0);
                if (modelError is not null)
                {
                    await OpenAiErrors.WriteAsync(context, modelError).ConfigureAwait(false);
                    return;
                }

                var tokens = TokenBuffer.Rent();
                int count;
                try
                {
                    (_modelTokenizers.GetValueOrDefault(model) ?? _tokenizer).Encode(request.PromptText, tokens);
                    count = tokens.Count;
                }
                finally
                {
                    TokenBuffer.Return(tokens);
                }

                var bytes = render(count);
                context.Response.StatusCode = 200;
                context.Response.ContentType = "application/json";
                await context.Response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        finally
        {
            _metrics.RecordRequest(tenant?.Path, context.Response.StatusCode, translation.EndpointName);
        }
    }
}
