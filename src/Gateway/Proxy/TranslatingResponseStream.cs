using System.Buffers;
using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy;

/// <summary>
/// Another client API served through the chat completions pipeline: turns the client's request body into a chat
/// completions body (auth, the fair queue, routing, retries, usage and the agent layer then act on that body exactly as
/// on one a client sent).
/// </summary>
public interface IRequestTranslation
{
    /// <summary>The endpoint label of the request metrics ("messages", "responses").</summary>
    string EndpointName { get; }

    /// <summary>Translates <paramref name="body"/>; a bad body gives an error (status 4xx) and no chat body.</summary>
    bool TryTranslate(ReadOnlyMemory<byte> body, Tenant tenant, out ReadOnlyMemory<byte> chatBody, out OpenAiError? error);

    /// <summary>
    /// The same, for translations that must first read state (a stored previous response): an error, or the chat body.
    /// By default <see cref="TryTranslate"/>.
    /// </summary>
    ValueTask<(ReadOnlyMemory<byte> ChatBody, OpenAiError? Error)> TranslateAsync(ReadOnlyMemory<byte> body, Tenant tenant, CancellationToken ct) =>
        ValueTask.FromResult(TryTranslate(body, tenant, out var chat, out var error) ? (chat, (OpenAiError?)null) : (default(ReadOnlyMemory<byte>), error));
}

/// <summary>Turns what the pipeline answers (chat completions, OpenAI errors) into the client API's answer.</summary>
public interface IResponseTranslator
{
    /// <summary>One streamed event's data (a chat completion chunk, or a <c>{"error":{...}}</c> the gateway wrote).</summary>
    void OnChunk(ReadOnlySpan<byte> data, IBufferWriter<byte> output);

    /// <summary>The stream ended (<c>[DONE]</c>, or the end of the body without it).</summary>
    void OnEnd(IBufferWriter<byte> output);

    /// <summary>A whole 2xx JSON answer (a chat completion).</summary>
    byte[] TranslateBody(ReadOnlySpan<byte> json);

    /// <summary>A non-2xx answer (an OpenAI-shaped error from the gateway or the worker, or anything else).</summary>
    byte[] TranslateError(int status, ReadOnlySpan<byte> json);
}

/// <summary>
/// Stands in for the response body while the pipeline answers a translated request. A 2xx event stream is translated
/// event by event as it arrives and written on at once (nothing waits for the whole answer); any other answer (a JSON
/// completion, an error from the gateway or a worker) is collected and translated whole by <see cref="CompleteAsync"/>,
/// which also sets its Content-Length. Everything the pipeline writes goes through it, so a client of the other API
/// never sees an OpenAI-shaped body.
/// </summary>
public sealed class TranslatingResponseStream : Stream
{
    private readonly Stream _inner;
    private readonly HttpResponse _response;
    private readonly IResponseTranslator _translator;
    private readonly ArrayBufferWriter<byte> _pending = new(4096);
    private readonly ArrayBufferWriter<byte> _output = new(4096);
    private int _scan;
    private bool? _sse;
    private bool _ended;
    private bool _completed;

    /// <summary>Wraps <paramref name="inner"/>, the response body the client reads.</summary>
    public TranslatingResponseStream(Stream inner, HttpResponse response, IResponseTranslator translator)
    {
        _inner = inner;
        _response = response;
        _translator = translator;
    }

    /// <summary>Runs <paramref name="pipeline"/> with the response body standing behind <paramref name="translator"/>.</summary>
    public static async Task RunAsync(HttpContext context, IResponseTranslator translator, Func<Task> pipeline)
    {
        var original = context.Response.Body;
        var translating = new TranslatingResponseStream(original, context.Response, translator);
        context.Response.Body = translating;
        try
        {
            await pipeline().ConfigureAwait(false);
            if (!context.RequestAborted.IsCancellationRequested)
            {
                await translating.CompleteAsync(context.RequestAborted).ConfigureAwait(false);
            }
        }
        finally
        {
            context.Response.Body = original;
        }
    }

    /// <inheritdoc />
    public override bool CanRead => false;

    /// <inheritdoc />
    public override bool CanSeek => false;

    /// <inheritdoc />
    public override bool CanWrite => true;

    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <inheritdoc />
    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_completed)
        {
            return;
        }

        _sse ??= _response.StatusCode is >= 200 and < 300
            && _response.ContentType?.StartsWith("text/event-stream", StringComparison.OrdinalIgnoreCase) == true;
        _pending.Write(buffer.Span);
        if (_sse == true)
        {
            DrainEvents(final: false);
            await WriteOutputAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    /// <inheritdoc />
    public override Task FlushAsync(CancellationToken cancellationToken) =>
        _completed || _sse != true ? Task.CompletedTask : _inner.FlushAsync(cancellationToken);

    /// <inheritdoc />
    public override void Flush()
    {
    }

    /// <summary>Ends the answer: the rest of a stream, or the whole translated body of any other answer.</summary>
    public async Task CompleteAsync(CancellationToken cancellationToken)
    {
        if (_completed)
        {
            return;
        }

        if (_sse == true)
        {
            DrainEvents(final: true);
            if (!_ended)
            {
                _ended = true;
                _translator.OnEnd(_output);
            }

            await WriteOutputAsync(cancellationToken).ConfigureAwait(false);
            await _inner.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        else if (_pending.WrittenCount > 0 && !_response.HasStarted)
        {
            int status = _response.StatusCode;
            byte[] body = status is >= 200 and < 300
                ? _translator.TranslateBody(_pending.WrittenSpan)
                : _translator.TranslateError(status, _pending.WrittenSpan);
            _response.ContentType = "application/json";
            _response.ContentLength = body.Length;
            await _inner.WriteAsync(body, cancellationToken).ConfigureAwait(false);
        }

        _completed = true;
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();

    private async ValueTask WriteOutputAsync(CancellationToken ct)
    {
        if (_output.WrittenCount > 0)
        {
            if (!_response.HasStarted)
            {
                _response.ContentLength = null;
            }

            await _inner.WriteAsync(_output.WrittenMemory, ct).ConfigureAwait(false);
            _output.ResetWrittenCount();
        }
    }

    /// <summary>Translates every complete event in <see cref="_pending"/> (and, when final, an unterminated last one).</summary>
    private void DrainEvents(bool final)
    {
        var span = _pending.WrittenSpan;
        int start = 0;
        while (true)
        {
            int end = FindEventEnd(span, Math.Max(start, _scan));
            if (end < 0)
            {
                if (final && start < span.Length)
                {
                    OnEvent(span[start..]);
                    start = span.Length;
                }

                break;
            }

            OnEvent(span[start..end]);
            start = end;
        }

        if (start > 0)
        {
            var rest = span[start..].ToArray();
            _pending.ResetWrittenCount();
            _pending.Write(rest);
            _scan = 0;
        }
        else
        {
            _scan = Math.Max(0, span.Length - 3);
        }
    }

    private static int FindEventEnd(ReadOnlySpan<byte> span, int from)
    {
        for (int i = from; i < span.Length - 1; i++)
        {
            if (span[i] != (byte)'\n')
            {
                continue;
            }

            if (span[i + 1] == (byte)'\n')
            {
                return i + 2;
            }

            if (span[i + 1] == (byte)'\r' && i + 2 < span.Length && span[i + 2] == (byte)'\n')
            {
                return i + 3;
            }
        }

        return -1;
    }

    private void OnEvent(ReadOnlySpan<byte> evt)
    {
        while (!evt.IsEmpty)
        {
            int nl = evt.IndexOf((byte)'\n');
            var line = nl < 0 ? evt : evt[..nl];
            evt = nl < 0 ? default : evt[(nl + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            if (!line.StartsWith("data:"u8) || _ended)
            {
                continue;
            }

            var data = line[5..];
            if (!data.IsEmpty && data[0] == (byte)' ')
            {
                data = data[1..];
            }

            if (data.SequenceEqual("[DONE]"u8))
            {
                _ended = true;
                _translator.OnEnd(_output);
            }
            else if (!data.IsEmpty)
            {
                _translator.OnChunk(data, _output);
            }
        }
    }
}
