using System.Buffers;
using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// The YARP transform of one forwarding attempt. Request: the buffered body is re-sent (the client's body was read
/// once), the client's credentials and any client-supplied hint headers are dropped, and the gateway's hints
/// (<c>x-session-id</c>, <c>x-cache-salt</c>, <c>x-request-priority</c> for resumed agent turns) are set. Response: 5xx/429 are held back (not copied) so the attempt can
/// be retried on another worker; a non-streaming answer is buffered whole (a worker dying mid-body is then still a
/// retryable failure, and usage is read from it); a stream is wrapped in <see cref="SseRelayStream"/> and primed to its
/// first event before anything reaches the client.
/// </summary>
internal sealed class GatewayTransformer : HttpTransformer
{
    private static readonly MediaTypeHeaderValue JsonContentType = new("application/json");
    private readonly GatewayRequestContext _ctx;
    private readonly CancellationTokenSource _firstByte;
    private readonly ProxySettings _settings;
    private byte[]? _answer;

    public GatewayTransformer(GatewayRequestContext ctx, CancellationTokenSource firstByte, ProxySettings settings)
    {
        _ctx = ctx;
        _firstByte = firstByte;
        _settings = settings;
    }

    /// <summary>Status the worker answered with when the answer was held back (5xx/429).</summary>
    public int HeldBackStatus { get; private set; }

    /// <summary>Retry-After the worker sent with a held-back 429/503.</summary>
    public TimeSpan? RetryAfter { get; private set; }

    /// <summary>True when the held-back answer was a draining worker's 503 (header <c>X-Worker-Draining</c>).</summary>
    public bool UpstreamDraining { get; private set; }

    /// <summary>True when the worker failed after its headers and before the first byte reached the client.</summary>
    public bool FailedBeforeFirstByte { get; private set; }

    /// <summary>The stream wrapper of a streaming answer (null otherwise).</summary>
    public SseRelayStream? Relay { get; private set; }

    /// <summary>True once the response headers arrived and were accepted.</summary>
    public bool ResponseAccepted { get; private set; }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        // YARP streams the outgoing body from HttpContext.Request.Body and refuses a replaced HttpContent, so each attempt
        // puts a fresh stream over the buffered (possibly rewritten) body there, with its length and type, before the
        // base transform copies the request headers onto the outgoing message.
        var request = httpContext.Request;
        request.Body = BodyStream(_ctx.ForwardBody);
        request.ContentLength = _ctx.ForwardBody.Length;
        request.ContentType = JsonContentType.MediaType;
        request.Headers.Remove("Transfer-Encoding");
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        if (_ctx.UpstreamPath is { } path)
        {
            proxyRequest.RequestUri = RequestUtilities.MakeDestinationAddress(destinationPrefix, new PathString(path), QueryString.Empty);
        }

        var h = proxyRequest.Headers;
        h.Authorization = null;
        h.Remove(Gateway.Auth.ApiCredential.ApiKeyHeader);
        h.Remove(WorkerHeaders.CacheSalt);
        h.Remove(WorkerHeaders.SessionId);
        h.Remove(WorkerHeaders.RetentionTtl);
        h.Remove(WorkerHeaders.RequestPriority); // only the gateway decides a request's priority
        h.Remove("Cookie");
        if (System.Diagnostics.Activity.Current is not null)
        {
            // The handler's propagator injects the gateway's own span as the parent; it never overrides a header that is
            // already there, so drop the client's copy (with no activity the client's context passes through as is).
            h.Remove("traceparent");
            h.Remove("tracestate");
        }
        h.TryAddWithoutValidation(WorkerHeaders.CacheSalt, _ctx.Tenant.CacheSalt);
        if (_ctx.SessionId is not null)
        {
            h.TryAddWithoutValidation(WorkerHeaders.SessionId, _ctx.SessionId);
        }

        if (_ctx.Priority.EnginePriority != 0)
        {
            h.TryAddWithoutValidation(WorkerHeaders.RequestPriority, _ctx.Priority.EnginePriority.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        if (proxyRequest.Content is { } forwarded)
        {
            forwarded.Headers.ContentLength = _ctx.ForwardBody.Length;
            forwarded.Headers.ContentType = JsonContentType;
        }
        else
        {
            // The client's request declared no body (YARP made no content for it): the gateway's body goes as its own.
            var content = new ReadOnlyMemoryContent(_ctx.ForwardBody);
            content.Headers.ContentType = JsonContentType;
            proxyRequest.Content = content;
        }
    }

    private static MemoryStream BodyStream(ReadOnlyMemory<byte> body) =>
        System.Runtime.InteropServices.MemoryMarshal.TryGetArray(body, out var segment) && segment.Array is not null
            ? new MemoryStream(segment.Array, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(body.ToArray(), writable: false);

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (proxyResponse is null)
        {
            return await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        }

        int status = (int)proxyResponse.StatusCode;
        if (status >= 500 || status == 429)
        {
            HeldBackStatus = status;
            RetryAfter = proxyResponse.Headers.RetryAfter?.Delta;
            UpstreamDraining = status == 503 && proxyResponse.Headers.Contains(WorkerHeaders.WorkerDraining);
            return false; // nothing copied: the handler clears the response and retries elsewhere
        }

        if (status is >= 200 and < 300)
        {
            var mediaType = proxyResponse.Content.Headers.ContentType?.MediaType;
            if (string.Equals(mediaType, "text/event-stream", StringComparison.OrdinalIgnoreCase))
            {
                var upstream = await proxyResponse.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                var relay = new SseRelayStream(upstream, _ctx, _settings.IdleTimeout, _settings.MaxSseEventBytes);
                try
                {
                    await relay.PrimeAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is IOException or HttpRequestException or OperationCanceledException)
                {
                    FailedBeforeFirstByte = true;
                    await relay.DisposeAsync().ConfigureAwait(false);
                    throw;
                }

                _firstByte.CancelAfter(Timeout.Infinite);
                await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
                httpContext.Response.ContentLength = null; // events may be dropped
                httpContext.Response.Headers["X-Accel-Buffering"] = "no";
                var wrapped = new StreamContent(relay);
                proxyResponse.Content = wrapped;
                Relay = relay;
            }
            else if (_ctx.Request.Stream is false)
            {
                int length;
                try
                {
                    (_answer, length) = await ReadBoundedAsync(proxyResponse.Content, _settings.MaxResponseBytes, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested && ex is IOException or HttpRequestException or OperationCanceledException)
                {
                    FailedBeforeFirstByte = true;
                    throw;
                }

                _firstByte.CancelAfter(Timeout.Infinite);
                _ctx.MarkFirstEvent();
                ResponseScanner.Scan(_answer.AsSpan(0, length), _ctx);
                // The worker's headers (Content-Type, Content-Length, ...) reach the client here; the buffered bytes then
                // go out as the body (the pooled buffer is given back once the forwarder is done: ReleaseBufferedAnswer).
                await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
                proxyResponse.Content = new ByteArrayContent(_answer, 0, length);
            }
            else
            {
                _firstByte.CancelAfter(Timeout.Infinite);
                await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
            }
        }
        else
        {
            _firstByte.CancelAfter(Timeout.Infinite);
            await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken).ConfigureAwait(false);
        }

        ResponseAccepted = true;
        return true;
    }

    /// <summary>Gives back the pooled buffer of a buffered (non-streaming) answer; call once the forwarder has sent it.</summary>
    public void ReleaseBufferedAnswer()
    {
        if (_answer is { } buffer)
        {
            _answer = null;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>Reads a whole answer into a pooled buffer (at most <paramref name="limit"/> bytes); the caller returns it to the pool.</summary>
    private static async ValueTask<(byte[] Buffer, int Length)> ReadBoundedAsync(HttpContent content, int limit, CancellationToken ct)
    {
        long? declared = content.Headers.ContentLength;
        if (declared > limit)
        {
            throw new IOException($"worker response larger than {limit} bytes");
        }

        using var stream = await content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = ArrayPool<byte>.Shared.Rent(declared is { } len ? Math.Max(1, (int)len) : 16 * 1024);
        int length = 0;
        try
        {
            if (declared is { } exact)
            {
                await stream.ReadExactlyAsync(buffer.AsMemory(0, (int)exact), ct).ConfigureAwait(false);
                return (buffer, (int)exact);
            }

            int n;
            while ((n = await stream.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false)) > 0)
            {
                length += n;
                if (length > limit)
                {
                    throw new IOException($"worker response larger than {limit} bytes");
                }

                if (length == buffer.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(limit + 1, buffer.Length * 2));
                    buffer.AsSpan(0, length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = bigger;
                }
            }

            return (buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }
}

/// <summary>Settings the transformer needs, resolved once from options.</summary>
internal sealed record ProxySettings(TimeSpan IdleTimeout, int MaxSseEventBytes, int MaxResponseBytes);
