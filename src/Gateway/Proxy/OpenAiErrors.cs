using System.Globalization;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy;

/// <summary>Writes OpenAI-shaped errors (<c>{"error":{"message","type","param","code"}}</c>) with the right status.</summary>
internal static class OpenAiErrors
{
    public static OpenAiError InvalidKey { get; } = new(401, "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'.", "invalid_request_error", null, "invalid_api_key");

    public static OpenAiError ModelNotAllowed(string model) =>
        new(403, $"This API key may not use the model '{model}'.", "invalid_request_error", "model", "model_not_allowed");

    public static OpenAiError NoHealthyWorker(string model) =>
        new(503, $"No healthy worker is available for the model '{model}'. Retry later.", "server_error", null, "no_healthy_worker");

    public static OpenAiError NotFound(string method, string path) =>
        new(404, $"Unknown request URL: {method} {path}.", "invalid_request_error", null, "unknown_url");

    public static async Task WriteAsync(HttpContext context, OpenAiError error, int? retryAfterSeconds = null)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            return;
        }

        response.Clear();
        response.StatusCode = error.Status;
        response.ContentType = "application/json";
        if (retryAfterSeconds is { } s)
        {
            response.Headers.RetryAfter = s.ToString(CultureInfo.InvariantCulture);
        }

        var bytes = error.ToJsonBytes();
        response.ContentLength = bytes.Length;
        await response.Body.WriteAsync(bytes, context.RequestAborted).ConfigureAwait(false);
    }
}
