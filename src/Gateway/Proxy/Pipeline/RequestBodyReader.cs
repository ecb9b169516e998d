using System.Buffers;
using Gateway.Configuration;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// Reads a request body once into a pooled buffer, bounded by <c>Gateway:Limits:MaxBodyBytes</c>: a larger body is
/// read on (and dropped) up to Kestrel's hard limit so the client reads a clear 413 instead of a reset connection.
/// </summary>
public sealed class RequestBodyReader
{
    private readonly long _limit;

    /// <summary>Creates the reader (singleton).</summary>
    public RequestBodyReader(IOptions<GatewayOptions> options) => _limit = options.Value.Limits.MaxBodyBytes;

    /// <summary>Kestrel's hard body limit for a soft one: room to read (and drop) an oversized upload before the 413.</summary>
    public static long HardBodyLimit(long limit) => limit > long.MaxValue / 2 ? long.MaxValue : limit * 2;

    /// <summary>Reads the request body into a pooled buffer (give it back with <see cref="PooledBody.Dispose"/>), or the 413 to answer.</summary>
    public async ValueTask<(PooledBody Body, OpenAiError? Error)> ReadAsync(HttpContext context)
    {
        long limit = _limit;
        long hard = HardBodyLimit(limit);
        long? declared = context.Request.ContentLength;
        var sizeFeature = context.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (sizeFeature is { IsReadOnly: false })
        {
            sizeFeature.MaxRequestBodySize = hard;
        }

        if (declared > limit)
        {
            if (declared <= hard)
            {
                await DrainAsync(context).ConfigureAwait(false);
            }

            return (default, OpenAiError.TooLarge(limit));
        }

        var buffer = ArrayPool<byte>.Shared.Rent(declared is > 0 ? (int)declared.Value : 16 * 1024);
        int length = 0;
        try
        {
            var body = context.Request.Body;
            while (true)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length >= limit)
                    {
                        // Probe for one more byte: exactly at the limit is fine, beyond is not.
                        var probe = new byte[1];
                        if (await body.ReadAsync(probe, context.RequestAborted).ConfigureAwait(false) > 0)
                        {
                            ArrayPool<byte>.Shared.Return(buffer);
                            await DrainAsync(context).ConfigureAwait(false);
                            return (default, OpenAiError.TooLarge(limit));
                        }

                        break;
                    }

                    var bigger = ArrayPool<byte>.Shared.Rent((int)Math.Min(limit, (long)buffer.Length * 2));
                    Buffer.BlockCopy(buffer, 0, bigger, 0, length);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }

                int n = await body.ReadAsync(buffer.AsMemory(length), context.RequestAborted).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                length += n;
                if (length > limit)
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    await DrainAsync(context).ConfigureAwait(false);
                    return (default, OpenAiError.TooLarge(limit));
                }
            }

            return (new PooledBody(buffer, length), null);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            ArrayPool<byte>.Shared.Return(buffer);
            return (default, OpenAiError.TooLarge(limit));
        }
    }

    /// <summary>
    /// Reads and drops the rest of an oversized upload (bounded by the hard limit), so the client finishes sending
    /// and reads the 413 instead of a reset connection; past the hard limit Kestrel closes the connection.
    /// </summary>
    private static async Task DrainAsync(HttpContext context)
    {
        var scratch = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (await context.Request.Body.ReadAsync(scratch, context.RequestAborted).ConfigureAwait(false) > 0)
            {
            }
        }
        catch (BadHttpRequestException)
        {
            // over the hard limit
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }
}

/// <summary>A request body in a buffer rented from <see cref="ArrayPool{T}.Shared"/>; the one owner calls <see cref="Dispose"/> once to give it back.</summary>
public readonly struct PooledBody : IDisposable
{
    private readonly byte[]? _buffer;

    internal PooledBody(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    /// <summary>Body length in bytes.</summary>
    public int Length { get; }

    /// <summary>The body's bytes (valid until <see cref="Dispose"/>).</summary>
    public ReadOnlyMemory<byte> Memory => _buffer is null ? default : _buffer.AsMemory(0, Length);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }
    }
}
