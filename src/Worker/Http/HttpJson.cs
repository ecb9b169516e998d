using System.Buffers;
using System.Text.Json;
using Gateway.Core.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Worker.Http;

/// <summary>Small helpers: bounded body reads and JSON/error responses written with <see cref="Utf8JsonWriter"/>.</summary>
internal static class HttpJson
{
    /// <summary>Reads the whole body, at most <paramref name="limit"/> bytes; an OpenAI error (413/400) otherwise.</summary>
    public static async Task<(byte[]? Body, OpenAiError? Error)> ReadBodyAsync(HttpContext ctx, long limit)
    {
        if (ctx.Request.ContentLength is long declared && declared > limit)
        {
            return (null, OpenAiError.TooLarge(limit));
        }

        var buffer = new ArrayBufferWriter<byte>(ctx.Request.ContentLength is long cl and > 0 ? (int)Math.Min(cl, limit) : 4096);
        try
        {
            var stream = ctx.Request.Body;
            while (true)
            {
                var mem = buffer.GetMemory(8192);
                int n = await stream.ReadAsync(mem, ctx.RequestAborted).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                buffer.Advance(n);
                if (buffer.WrittenCount > limit)
                {
                    return (null, OpenAiError.TooLarge(limit));
                }
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return (null, OpenAiError.TooLarge(limit));
        }
        catch (BadHttpRequestException ex)
        {
            return (null, new OpenAiError(ex.StatusCode, "Malformed request body: " + ex.Message, "invalid_request_error", null, "bad_request"));
        }

        return (buffer.WrittenSpan.ToArray(), null);
    }

    /// <summary>Writes <paramref name="error"/> as an OpenAI error body with its status.</summary>
    public static Task WriteErrorAsync(HttpContext ctx, OpenAiError error)
    {
        if (ctx.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        ctx.Response.StatusCode = error.Status;
        ctx.Response.ContentType = "application/json";
        var bytes = error.ToJsonBytes();
        ctx.Response.ContentLength = bytes.Length;
        return ctx.Response.Body.WriteAsync(bytes, ctx.RequestAborted).AsTask();
    }

    /// <summary>Writes a JSON body produced by <paramref name="write"/>.</summary>
    public static Task WriteJsonAsync(HttpContext ctx, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            write(w);
        }

        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        ctx.Response.ContentLength = buffer.WrittenCount;
        return ctx.Response.Body.WriteAsync(buffer.WrittenMemory, ctx.RequestAborted).AsTask();
    }

    /// <summary>405 in OpenAI shape.</summary>
    public static OpenAiError MethodNotAllowed(HttpContext ctx, string allowed) =>
        new(405, $"Method {ctx.Request.Method} is not allowed on {ctx.Request.Path}; use {allowed}.", "invalid_request_error", null, "method_not_allowed");

    /// <summary>404 for an unknown route, in OpenAI shape.</summary>
    public static OpenAiError UnknownRoute(HttpContext ctx) =>
        new(404, $"Invalid URL ({ctx.Request.Method} {Trim(ctx.Request.Path.Value ?? "")}).", "invalid_request_error", null, "unknown_url");

    private static string Trim(string s) => s.Length <= 200 ? s : s[..200] + "…";
}
