using System.Buffers;
using System.Text.Json;
using Llm.Prompt.OpenAi;

namespace Gateway.Proxy;

/// <summary>
/// The response body of a streaming answer, as the forwarder reads it: an SSE pass-through over the worker's stream
/// that hands on every event as soon as it is complete (never waits for more), inspects each one (usage, finish
/// reason, tool calls, [DONE]), drops the usage-only chunk when the gateway asked for it on the client's behalf,
/// and never lets the client's stream end silently: a broken worker connection, an idle timeout or an end without
/// [DONE] becomes an OpenAI-shaped <c>data: {"error":{...}}</c> event, then the end of the stream.
/// One pooled buffer per stream; no allocation per event beyond what the scanner needs.
/// </summary>
internal sealed class SseRelayStream : Stream
{
    private readonly Stream _upstream;
    private readonly GatewayRequestContext _ctx;
    private readonly TimeSpan _idleTimeout;
    private readonly int _maxEventBytes;
    private byte[] _buf;
    private int _start;        // first byte not yet handed on
    private int _approved;     // [_start, _approved) inspected and approved for output
    private int _end;          // end of buffered data
    private int _scan;         // where the search for the next event end resumes
    private byte[]? _tail;     // error event to emit before ending
    private int _tailPos;
    private bool _upstreamDone;
    private bool _finished;
    private CancellationTokenSource? _idleCts;
    private CancellationToken _linkedTo;

    public SseRelayStream(Stream upstream, GatewayRequestContext ctx, TimeSpan idleTimeout, int maxEventBytes)
    {
        _upstream = upstream;
        _ctx = ctx;
        _idleTimeout = idleTimeout;
        _maxEventBytes = maxEventBytes;
        _buf = ArrayPool<byte>.Shared.Rent(16 * 1024);
    }

    /// <summary>True when the worker's stream broke (connection lost, idle timeout, no [DONE]).</summary>
    public bool Failed { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    /// <summary>
    /// Reads until the first complete event is buffered (so a worker that fails before its first event can still be
    /// retried elsewhere: nothing has reached the client). Throws when the worker fails first.
    /// </summary>
    public async ValueTask PrimeAsync(CancellationToken ct)
    {
        while (!Approve())
        {
            if (_upstreamDone)
            {
                throw new IOException("worker ended the stream before its first event");
            }

            await FillAsync(ct, throwOnError: true).ConfigureAwait(false);
        }

        if (FirstEventIsError)
        {
            throw new IOException("the worker's first event was an error");
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            if (_approved > _start || Approve())
            {
                int n = Math.Min(destination.Length, _approved - _start);
                _buf.AsSpan(_start, n).CopyTo(destination.Span);
                _start += n;
                return n;
            }

            if (_tail is not null)
            {
                int n = Math.Min(destination.Length, _tail.Length - _tailPos);
                _tail.AsSpan(_tailPos, n).CopyTo(destination.Span);
                _tailPos += n;
                if (_tailPos == _tail.Length)
                {
                    _tail = null;
                    _finished = true;
                }

                return n;
            }

            if (_finished)
            {
                return 0;
            }

            if (_upstreamDone)
            {
                if (_end > _start)
                {
                    // A final event without its blank line: inspect it and hand it on as it is.
                    bool drop = Inspect(_buf.AsSpan(_approved, _end - _approved));
                    _approved = _scan = _end;
                    if (drop)
                    {
                        _start = _end;
                    }

                    continue;
                }

                if (!_ctx.SawDone && _ctx.StreamError is null)
                {
                    SetError("The worker closed the stream before it was complete.", "upstream_stream_incomplete");
                    continue;
                }

                _finished = true;
                return 0;
            }

            await FillAsync(cancellationToken, throwOnError: false).ConfigureAwait(false);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count, CancellationToken.None).GetAwaiter().GetResult();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _upstream.Dispose();
            _idleCts?.Dispose();
            var b = _buf;
            _buf = [];
            if (b.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(b);
            }
        }

        base.Dispose(disposing);
    }

    /// <summary>Inspects complete events after <see cref="_approved"/>; returns true when some bytes are approved for output.</summary>
    private bool Approve()
    {
        while (true)
        {
            int eventEnd = FindEventEnd();
            if (eventEnd < 0)
            {
                return _approved > _start;
            }

            bool drop = Inspect(_buf.AsSpan(_approved, eventEnd - _approved));
            if (drop)
            {
                if (_approved > _start)
                {
                    // Hand on what is approved first; the dropped event is cut out on the next call.
                    _scan = _approved;
                    return true;
                }

                _start = _approved = _scan = eventEnd;
                continue;
            }

            _approved = eventEnd;
            _scan = eventEnd;
        }
    }

    /// <summary>End (exclusive) of the next complete event from <see cref="_approved"/>, or -1.</summary>
    private int FindEventEnd()
    {
        int from = Math.Max(_scan, _approved);
        var span = _buf.AsSpan(0, _end);
        while (from < _end)
        {
            int nl = span[from.._end].IndexOf((byte)'\n');
            if (nl < 0)
            {
                _scan = _end;
                return -1;
            }

            int i = from + nl;
            if (i + 1 >= _end)
            {
                _scan = i;
                return -1;
            }

            if (span[i + 1] == (byte)'\n')
            {
                return i + 2;
            }

            if (span[i + 1] == (byte)'\r')
            {
                if (i + 2 >= _end)
                {
                    _scan = i;
                    return -1;
                }

                if (span[i + 2] == (byte)'\n')
                {
                    return i + 3;
                }
            }

            from = i + 1;
        }

        _scan = _end;
        return -1;
    }

    /// <summary>Looks at one event's data lines; returns true when it must not reach the client.</summary>
    /// <summary>The worker's first data event was an error object (see <see cref="PrimeAsync"/>).</summary>
    public bool FirstEventIsError { get; private set; }

    /// <summary>A JSON object whose first property is <c>error</c>: the OpenAI-shaped error event a worker streams.</summary>
    private static bool IsErrorEvent(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        try
        {
            return reader.Read() && reader.TokenType == JsonTokenType.StartObject && reader.Read()
                && reader.TokenType == JsonTokenType.PropertyName && reader.ValueTextEquals("error"u8);
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private bool Inspect(ReadOnlySpan<byte> evt)
    {
        bool drop = false;
        while (!evt.IsEmpty)
        {
            int nl = evt.IndexOf((byte)'\n');
            var line = nl < 0 ? evt : evt[..nl];
            evt = nl < 0 ? default : evt[(nl + 1)..];
            if (!line.IsEmpty && line[^1] == (byte)'\r')
            {
                line = line[..^1];
            }

            if (!line.StartsWith("data:"u8))
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
                _ctx.SawDone = true;
                continue;
            }

            if (!_ctx.FirstEventSeen && IsErrorEvent(data))
            {
                // Nothing has reached the client yet: an error as the worker's first event (shutting down, engine
                // rejected or aborted the request) is a failure before the first byte, retried on another worker.
                FirstEventIsError = true;
                return drop;
            }

            _ctx.MarkFirstEvent();
            if (ResponseScanner.Scan(data, _ctx))
            {
                drop |= _ctx.StripUsageChunk;
            }
            else
            {
                _ctx.MarkDataEvent();
            }
        }

        return drop;
    }

    private async ValueTask FillAsync(CancellationToken ct, bool throwOnError)
    {
        if (_end == _buf.Length)
        {
            if (_start > 0)
            {
                Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
                _end -= _start;
                _approved -= _start;
                _scan -= _start;
                _start = 0;
            }
            else if (_buf.Length < _maxEventBytes)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(_buf.Length * 2, _maxEventBytes));
                Buffer.BlockCopy(_buf, 0, bigger, 0, _end);
                ArrayPool<byte>.Shared.Return(_buf);
                _buf = bigger;
            }
            else
            {
                if (throwOnError)
                {
                    throw new IOException("worker sent an SSE event larger than the limit");
                }

                _start = _approved = _end = _scan = 0;
                SetError($"The worker sent an event larger than {_maxEventBytes} bytes.", "upstream_event_too_large");
                _upstreamDone = true;
                return;
            }
        }

        if (_idleCts is null || _linkedTo != ct || !_idleCts.TryReset())
        {
            _idleCts?.Dispose();
            _idleCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            _linkedTo = ct;
        }

        _idleCts.CancelAfter(_idleTimeout);
        try
        {
            int n = await _upstream.ReadAsync(_buf.AsMemory(_end), _idleCts.Token).ConfigureAwait(false);
            _idleCts.CancelAfter(Timeout.Infinite);
            if (n == 0)
            {
                _upstreamDone = true;
            }
            else
            {
                _end += n;
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            if (throwOnError)
            {
                throw new IOException("worker sent nothing within the idle timeout");
            }

            SetError($"The worker sent nothing for {_idleTimeout.TotalSeconds:0.#} s; the stream was ended.", "upstream_idle_timeout");
            _upstreamDone = true;
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is IOException or HttpRequestException or ObjectDisposedException)
        {
            if (throwOnError)
            {
                throw;
            }

            SetError("The connection to the worker was lost mid-stream.", "upstream_connection_lost");
            _upstreamDone = true;
        }
    }

    private void SetError(string message, string code)
    {
        Failed = true;
        _ctx.StreamError = code;
        // Drop any partial event: the error must start on an event boundary.
        _end = _approved;
        var err = new OpenAiError(502, message, "server_error", null, code).ToJsonBytes();
        var tail = new byte[6 + err.Length + 2];
        "data: "u8.CopyTo(tail);
        err.CopyTo(tail, 6);
        tail[^2] = (byte)'\n';
        tail[^1] = (byte)'\n';
        _tail = tail;
        _tailPos = 0;
    }
}
