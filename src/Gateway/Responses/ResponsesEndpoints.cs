using Gateway.Auth;
using Gateway.Core.OpenAi;
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
            return TranslatingResponseStream.RunAsync(ctx, translator, () => handler.HandleAsync(ctx, OpenAiEndpoint.ChatCompletions, new Translation(translator, store)));
        });
        app.MapGet("/v1/responses/{id}", ctx => GetAsync(ctx, auth, store, (string)ctx.Request.RouteValues["id"]!, delete: false));
        app.MapDelete("/v1/responses/{id}", ctx => GetAsync(ctx, auth, store, (string)ctx.Request.RouteValues["id"]!, delete: true));
        return app;
    }

    private static async Task GetAsync(HttpContext ctx, ApiKeyAuthenticator auth, IResponseStore store, string id, bool delete)
    {
        var tenant = auth.Authenticate(ApiCredential.Of(ctx.Request.Headers));
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(ctx, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return;
        }

        var stored = store.Get(tenant.Path, id);
        if (stored is null || (delete && !store.Delete(tenant.Path, id)))
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

    private sealed class Translation(ResponsesResponseTranslator translator, IResponseStore store) : IRequestTranslation
    {
        public string EndpointName => "responses";

        public bool TryTranslate(ReadOnlyMemory<byte> body, Tenant tenant, out ReadOnlyMemory<byte> chatBody, out OpenAiError? error)
        {
            chatBody = default;
            if (!ResponsesRequestMapper.TryMap(body, ResponsesResponseTranslator.NewId("resp_"), id => store.Get(tenant.Path, id), out var mapped, out error))
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
