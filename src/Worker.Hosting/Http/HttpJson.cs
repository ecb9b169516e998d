using System.Buffers;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Worker.Http;

/// <summary>Small helpers: bounded body reads and JSON/error responses written with <see cref="Utf8JsonWriter"/>.</summary>
internal static class HttpJson
{
    /// <summary>
    /// Writer options of every response: minimal escaping (quotes and apostrophes stay readable, as OpenAI writes
    /// them); responses are JSON/SSE, never embedded in HTML.
    /// </summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Reads the whole body, at most <paramref name="limit"/> bytes; an OpenAI error (413/400) otherwise.</summary>
    public static async Task<(byte[]? Body, OpenAiError? Error)> ReadBodyAsync(HttpContext ctx, long limit)
    {
        if (ctx.Request.ContentLength is long declared && declared > limit)
        {
            return (null, OpenAiError.TooLarge(limit));
        }

        var buffer = new ArrayBufferWriter<byte>(ctx.Request.ContentLength is long cl and > 0 ? (int)Math.Min(Math.Min(cl, limit), 1 << 20) : 4096);
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
                    // Read (and drop) the rest of an oversized chunked upload, bounded by Kestrel's hard limit, so the
                    // client finishes sending and sees the 413 instead of a reset connection.
                    await DrainAsync(stream, ctx.RequestAborted).ConfigureAwait(false);
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

    /// <summary>Kestrel's hard body limit for a soft limit: room to drain an oversized upload before answering 413.</summary>
    public static long HardBodyLimit(long limit) => limit > long.MaxValue / 2 ? long.MaxValue : limit * 2;

    private static async Task DrainAsync(Stream stream, CancellationToken ct)
    {
        var scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (await stream.ReadAsync(scratch, ct).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (BadHttpRequestException)
        {
            // over the hard limit: Kestrel closes the connection after the 413
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>Writes <paramref name="error"/> as an OpenAI error body with its status.</summary>
    public static Task WriteErrorAsync(HttpContext ctx, OpenAiError error)
    {
        if (ctx.Response.HasStarted)
        {
            return Task.CompletedTask;
        }

        return WriteJsonAsync(ctx, error.Status, error.WriteTo);
    }

    /// <summary>Writes a JSON body produced by <paramref name="write"/>.</summary>
    public static Task WriteJsonAsync<T>(HttpContext ctx, int status, T value, JsonTypeInfo<T> type) =>
        WriteJsonAsync(ctx, status, w => JsonSerializer.Serialize(w, value, type));

    public static Task WriteJsonAsync(HttpContext ctx, int status, Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer, WriterOptions))
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

    /// <summary>503 while the worker drains (sent with Retry-After): a router retries the request elsewhere.</summary>
    public static OpenAiError Draining { get; } =
        new(503, "This worker is draining and takes no new requests; retry on another worker.", "server_error", null, "worker_draining");

    /// <summary>
    /// The error for an exception no handler caught (read from the exception handler's feature): a malformed request
    /// Kestrel reported keeps its 4xx; anything else is a 500 <c>internal_error</c>.
    /// </summary>
    public static OpenAiError Unhandled(HttpContext ctx) =>
        ctx.Features.Get<Microsoft.AspNetCore.Diagnostics.IExceptionHandlerFeature>()?.Error is BadHttpRequestException bad && bad.StatusCode is >= 400 and < 500
            ? new OpenAiError(bad.StatusCode, "Malformed request: " + bad.Message, "invalid_request_error", null, "bad_request")
            : OpenAiError.Internal;

    /// <summary>404 for an unknown route, in OpenAI shape.</summary>
    public static OpenAiError UnknownRoute(HttpContext ctx) =>
        new(404, $"Invalid URL ({ctx.Request.Method} {Trim(ctx.Request.Path.Value ?? "")}).", "invalid_request_error", null, "unknown_url");

    private static string Trim(string s) => s.Length <= 200 ? s : s[..200] + "…";
}
