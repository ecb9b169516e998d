using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Proxy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Anthropic;

/// <summary>
/// The Anthropic Messages surface: <c>POST /v1/messages</c> (Claude Code adds <c>?beta=true</c>) and
/// <c>POST /v1/messages/count_tokens</c>. The key comes as <c>x-api-key</c> or a bearer token; <c>anthropic-version</c>
/// and <c>anthropic-beta</c> are accepted and not needed. A message request is translated to a chat completion
/// (<see cref="AnthropicRequestMapper"/>) and takes the chat completions pipeline; its answer, errors included, is
/// translated back (<see cref="AnthropicResponseTranslator"/>).
/// </summary>
public static class AnthropicEndpoints
{
    /// <summary>Adds the endpoints.</summary>
    public static IEndpointRouteBuilder MapAnthropicEndpoints(this IEndpointRouteBuilder app)
    {
        var handler = app.ServiceProvider.GetRequiredService<ProxyHandler>();
        app.MapPost("/v1/messages", ctx => HandleMessagesAsync(ctx, handler));
        app.MapPost("/v1/messages/count_tokens", ctx => HandleCountTokensAsync(ctx, handler));
        return app;
    }

    private static async Task HandleMessagesAsync(HttpContext context, ProxyHandler handler)
    {
        var translator = new AnthropicResponseTranslator("", () => context.Features.Get<GatewayRequestContext>()?.Route.PromptTokens ?? 0);
        await TranslatingResponseStream.RunAsync(context, translator, () => handler.HandleAsync(context, OpenAiEndpoint.ChatCompletions, new MessagesTranslation(translator))).ConfigureAwait(false);
    }

    private static async Task HandleCountTokensAsync(HttpContext context, ProxyHandler handler)
    {
        var translator = new CountAnswer(new AnthropicResponseTranslator(""));
        await TranslatingResponseStream.RunAsync(context, translator, () => handler.CountPromptTokensAsync(context, new CountTranslation(), static n =>
        {
            var buffer = new System.Buffers.ArrayBufferWriter<byte>(32);
            using (var w = new System.Text.Json.Utf8JsonWriter(buffer))
            {
                w.WriteStartObject();
                w.WriteNumber("input_tokens", n);
                w.WriteEndObject();
            }

            return buffer.WrittenSpan.ToArray();
        })).ConfigureAwait(false);
    }

    private sealed class MessagesTranslation(AnthropicResponseTranslator translator) : IRequestTranslation
    {
        public string EndpointName => "messages";

        public bool TryTranslate(ReadOnlyMemory<byte> body, Tenant tenant, out ReadOnlyMemory<byte> chatBody, out OpenAiError? error)
        {
            bool ok = AnthropicRequestMapper.TryMap(body, requireMaxTokens: true, out var mapped, out string model, out error);
            chatBody = mapped;
            translator.Model = model;
            return ok;
        }
    }

    /// <summary>count_tokens answers in Anthropic's shape already; only its errors need translating.</summary>
    private sealed class CountAnswer(AnthropicResponseTranslator errors) : IResponseTranslator
    {
        public void OnChunk(ReadOnlySpan<byte> data, System.Buffers.IBufferWriter<byte> output) => System.Buffers.BuffersExtensions.Write(output, data);

        public void OnEnd(System.Buffers.IBufferWriter<byte> output)
        {
        }

        public byte[] TranslateBody(ReadOnlySpan<byte> json) => json.ToArray();

        public byte[] TranslateError(int status, ReadOnlySpan<byte> json) => errors.TranslateError(status, json);
    }

    private sealed class CountTranslation : IRequestTranslation
    {
        public string EndpointName => "messages_count_tokens";

        public bool TryTranslate(ReadOnlyMemory<byte> body, Tenant tenant, out ReadOnlyMemory<byte> chatBody, out OpenAiError? error)
        {
            bool ok = AnthropicRequestMapper.TryMap(body, requireMaxTokens: false, out var mapped, out error);
            chatBody = mapped;
            return ok;
        }
    }
}
