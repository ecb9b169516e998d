using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Proxy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Responses;

/// <summary>
/// The OpenAI Responses surface: <c>POST /v1/responses</c> (translated to a chat completion by
/// <see cref="ResponsesRequestMapper"/>, served by the chat completions pipeline, answered by
/// <see cref="ResponsesResponseTranslator"/>), <c>GET</c> and <c>DELETE /v1/responses/{id}</c> on the tenant's stored
/// responses.
/// </summary>
public static class ResponsesEndpoints
{
    /// <summary>Adds the endpoints.</summary>
    public static IEndpointRouteBuilder MapResponsesEndpoints(this IEndpointRouteBuilder app)
    {
        var handler = app.ServiceProvider.GetRequiredService<ProxyHandler>();
        var store = app.ServiceProvider.GetRequiredService<IResponseStore>();
        var auth = app.ServiceProvider.GetRequiredService<ApiKeyAuthenticator>();
        var time = app.ServiceProvider.GetRequiredService<TimeProvider>();
        app.MapPost("/v1/responses", ctx =>
        {
            var translator = new ResponsesResponseTranslator(store, time);
            return HandleCreateAsync(ctx, handler, translator, store);
        });
        app.MapGet("/v1/responses/{id}", ctx => GetAsync(ctx, auth, store, (string)ctx.Request.RouteValues["id"]!, delete: false));
        app.MapDelete("/v1/responses/{id}", ctx => GetAsync(ctx, auth, store, (string)ctx.Request.RouteValues["id"]!, delete: true));
        return app;
    }

    private static async Task HandleCreateAsync(HttpContext ctx, ProxyHandler handler, ResponsesResponseTranslator translator, IResponseStore store)
    {
        await TranslatingResponseStream.RunAsync(ctx, translator, () => handler.HandleAsync(ctx, OpenAiEndpoint.ChatCompletions, new Translation(translator, store))).ConfigureAwait(false);
        if (translator.PendingStore is { } write)
        {
            try
            {
                await write.ConfigureAwait(false);
            }
            catch (Exception ex) when (Gateway.State.RedisConnection.IsUnavailable(ex))
            {
                // The answer reached the client; only chaining onto it fails (counted in gateway_redis_commands_total).
            }
        }
    }

    private static async Task GetAsync(HttpContext ctx, ApiKeyAuthenticator auth, IResponseStore store, string id, bool delete)
    {
        var tenant = auth.Authenticate(ApiCredential.Of(ctx.Request.Headers));
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(ctx, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return;
        }

        StoredResponse? stored;
        bool deleted = false;
        try
        {
            stored = await store.GetAsync(tenant.Path, id).ConfigureAwait(false);
            deleted = delete && stored is not null && await store.DeleteAsync(tenant.Path, id).ConfigureAwait(false);
        }
        catch (Exception ex) when (Gateway.State.RedisConnection.IsUnavailable(ex))
        {
            await OpenAiErrors.WriteAsync(ctx, StoreUnavailable, 1).ConfigureAwait(false);
            return;
        }

        if (stored is null || (delete && !deleted))
        {
            await OpenAiErrors.WriteAsync(ctx, new OpenAiError(404, $"No response with id '{(id.Length <= 64 ? id : id[..64])}' found.", "invalid_request_error", "response_id", "not_found")).ConfigureAwait(false);
            return;
        }

        byte[] body = delete
            ? System.Text.Encoding.UTF8.GetBytes(new System.Text.Json.Nodes.JsonObject { ["id"] = id, ["object"] = "response", ["deleted"] = true }.ToJsonString())
            : stored.ResponseJson;
        ctx.Response.ContentType = "application/json";
        ctx.Response.ContentLength = body.Length;
        await ctx.Response.Body.WriteAsync(body, ctx.RequestAborted).ConfigureAwait(false);
    }

    private static OpenAiError StoreUnavailable { get; } =
        new(503, "The response store is unavailable. Retry later.", "server_error", null, "response_store_unavailable");

    private sealed class Translation(ResponsesResponseTranslator translator, IResponseStore store) : IRequestTranslation
    {
        public string EndpointName => "responses";

        public bool TryTranslate(ReadOnlyMemory<byte> body, Tenant tenant, out ReadOnlyMemory<byte> chatBody, out OpenAiError? error) =>
            Map(body, tenant, null, out chatBody, out error);

        public async ValueTask<(ReadOnlyMemory<byte> ChatBody, OpenAiError? Error)> TranslateAsync(ReadOnlyMemory<byte> body, Tenant tenant, CancellationToken ct)
        {
            // The previous response is read before mapping (the store may be remote); the mapper then finds it by id.
            StoredResponse? previous = null;
            if (PassthroughHandler.TopLevelString(body.Span, "previous_response_id") is { } id)
            {
                try
                {
                    previous = await store.GetAsync(tenant.Path, id).ConfigureAwait(false);
                }
                catch (Exception ex) when (Gateway.State.RedisConnection.IsUnavailable(ex))
                {
                    return (default, StoreUnavailable);
                }
            }

            return Map(body, tenant, previous, out var chat, out var error) ? (chat, null) : (default, error);
        }

        private bool Map(ReadOnlyMemory<byte> body, Tenant tenant, StoredResponse? previous, out ReadOnlyMemory<byte> chatBody, out OpenAiError? error)
        {
            chatBody = default;
            if (!ResponsesRequestMapper.TryMap(body, ResponsesResponseTranslator.NewId("resp_"), id => previous is not null && previous.Id == id ? previous : null, out var mapped, out error))
            {
                return false;
            }

            translator.Request = mapped;
            translator.TenantPath = tenant.Path;
            chatBody = mapped!.ChatBody;
            return true;
        }
    }
}
