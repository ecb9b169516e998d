using System.Text.Json;
using Gateway.Anthropic;
using Gateway.Auth;
using Gateway.Responses;
using Llm.Prompt.OpenAi;
using Gateway.Fleet;
using Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Proxy;

/// <summary>Maps the OpenAI surface, the pass-through of other /v1 paths, the OpenAI-shaped 404 for every unknown path, and /healthz + /readyz.</summary>
public static class OpenAiEndpoints
{
    /// <summary>Adds the gateway's endpoints.</summary>
    public static IEndpointRouteBuilder MapGatewayEndpoints(this IEndpointRouteBuilder app)
    {
        var handler = app.ServiceProvider.GetRequiredService<ProxyHandler>();
        var registry = app.ServiceProvider.GetRequiredService<WorkerRegistry>();
        var models = app.ServiceProvider.GetRequiredService<ModelCatalog>();
        var auth = app.ServiceProvider.GetRequiredService<ApiKeyAuthenticator>();
        var inFlight = app.ServiceProvider.GetRequiredService<InFlightTracker>();

        app.MapPost("/v1/chat/completions", ctx => handler.HandleAsync(ctx, OpenAiEndpoint.ChatCompletions));
        app.MapPost("/v1/completions", ctx => handler.HandleAsync(ctx, OpenAiEndpoint.Completions));
        app.MapPost("/v1/embeddings", ctx => handler.HandleAsync(ctx, OpenAiEndpoint.Embeddings));
        app.MapGet("/v1/models", ctx => WriteModelsAsync(ctx, auth, models));
        app.MapGet("/v1/models/{id}", ctx => WriteModelAsync(ctx, auth, models, (string)ctx.Request.RouteValues["id"]!));
        app.MapAnthropicEndpoints();
        app.MapResponsesEndpoints();
        // Any other /v1 path: passed through to a worker of the model its JSON body names, else a 404 in OpenAI shape.
        var passthrough = app.ServiceProvider.GetRequiredService<PassthroughHandler>();
        app.Map("/v1/{**rest}", passthrough.HandleAsync);

        // Any other path (outside /v1 too) is a 404 in the same shape, never an empty one.
        app.MapFallback(ctx => OpenAiErrors.WriteAsync(ctx, OpenAiErrors.NotFound(ctx.Request.Method, ctx.Request.Path)));

        app.MapGet("/healthz", static ctx =>
        {
            ctx.Response.ContentType = "text/plain";
            return ctx.Response.WriteAsync("ok");
        });
        app.MapGet("/readyz", ctx =>
        {
            bool ready = !inFlight.Draining && registry.AnyEligible;
            ctx.Response.StatusCode = ready ? 200 : 503;
            ctx.Response.ContentType = "text/plain";
            return ctx.Response.WriteAsync(ready ? "ready" : inFlight.Draining ? "draining" : "no healthy worker");
        });
        return app;
    }

    private static async Task WriteModelsAsync(HttpContext ctx, ApiKeyAuthenticator auth, ModelCatalog models)
    {
        var tenant = auth.Authenticate(ApiCredential.Of(ctx.Request.Headers));
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(ctx, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return;
        }

        ctx.Response.ContentType = "application/json";
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("object", "list");
            w.WriteStartArray("data");
            foreach (var m in models.Visible(tenant))
            {
                WriteModel(w, m);
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        await ctx.Response.Body.WriteAsync(ms.ToArray(), ctx.RequestAborted).ConfigureAwait(false);
    }

    private static async Task WriteModelAsync(HttpContext ctx, ApiKeyAuthenticator auth, ModelCatalog models, string id)
    {
        var tenant = auth.Authenticate(ApiCredential.Of(ctx.Request.Headers));
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(ctx, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return;
        }

        if (!models.IsVisible(tenant, id))
        {
            await OpenAiErrors.WriteAsync(ctx, OpenAiError.ModelNotFound(id)).ConfigureAwait(false);
            return;
        }

        ctx.Response.ContentType = "application/json";
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            WriteModel(w, id);
        }

        await ctx.Response.Body.WriteAsync(ms.ToArray(), ctx.RequestAborted).ConfigureAwait(false);
    }

    private static void WriteModel(Utf8JsonWriter w, string id)
    {
        w.WriteStartObject();
        w.WriteString("id", id);
        w.WriteString("object", "model");
        w.WriteNumber("created", 0);
        w.WriteString("owned_by", "gateway");
        w.WriteEndObject();
    }
}
