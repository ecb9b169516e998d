using System.Globalization;
using System.Text;

namespace Gateway.State;

/// <summary>Incremental RESP2 reply parser over a stream (one reader per connection).</summary>
internal sealed class RespReader
{
    private const int MaxBulkLength = 512 * 1024 * 1024;
    private const int MaxDepth = 32;

    private readonly Stream _stream;
    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    public RespReader(Stream stream) => _stream = stream;

    public async ValueTask<RespValue> ReadAsync(CancellationToken ct) => await ReadValueAsync(0, ct).ConfigureAwait(false);

    private async ValueTask<RespValue> ReadValueAsync(int depth, CancellationToken ct)
    {
        if (depth > MaxDepth)
        {
            throw new RespProtocolException("reply nested too deep");
        }

        var line = await ReadLineAsync(ct).ConfigureAwait(false);
        if (line.Length == 0)
        {
            throw new RespProtocolException("empty reply line");
        }

        var body = line[1..];
        switch (line[0])
        {
            case '+':
                return RespValue.Simple(body);
            case '-':
                return RespValue.Err(body);
            case ':':
                return RespValue.Int(ParseLong(body));
            case '$':
            {
                var len = ParseLong(body);
                if (len < 0)
                {
                    return RespValue.Null;
                }

                if (len > MaxBulkLength)
                {
                    throw new RespProtocolException($"bulk string of {len} bytes is over the limit");
                }

                var bytes = await ReadExactAsync((int)len + 2, ct).ConfigureAwait(false);
                if (bytes[^2] != '\r' || bytes[^1] != '\n')
                {
                    throw new RespProtocolException("bulk string not terminated by CRLF");
                }

                return RespValue.Bulk(Encoding.UTF8.GetString(bytes, 0, (int)len));
            }

            case '*':
            {
                var count = ParseLong(body);
                if (count < 0)
                {
                    return RespValue.Null;
                }

                if (count > 64 * 1024 * 1024)
                {
                    throw new RespProtocolException($"array of {count} elements is over the limit");
                }

                var items = new RespValue[count];
                for (var i = 0; i < count; i++)
                {
                    items[i] = await ReadValueAsync(depth + 1, ct).ConfigureAwait(false);
                }

                return RespValue.Arr(items);
            }

            default:
                throw new RespProtocolException($"unexpected reply type byte 0x{(int)line[0]:x2}");
        }
    }

    private static long ParseLong(string s) =>
        long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            ? v
            : throw new RespProtocolException($"bad length or integer '{s}'");

    private async ValueTask<string> ReadLineAsync(CancellationToken ct)
    {
        var scanFrom = _start;
        while (true)
        {
            var idx = Array.IndexOf(_buffer, (byte)'\n', scanFrom, _end - scanFrom);
            if (idx >= 0)
            {
                if (idx == _start || _buffer[idx - 1] != '\r')
                {
                    throw new RespProtocolException("line not terminated by CRLF");
                }

                var s = Encoding.UTF8.GetString(_buffer, _start, idx - 1 - _start);
                _start = idx + 1;
                return s;
            }

            scanFrom = _end;
            if (_end - _start > 64 * 1024)
            {
                throw new RespProtocolException("reply line too long");
            }

            var consumed = _start;
            await FillAsync(ct).ConfigureAwait(false);
            scanFrom -= consumed - _start; // buffer may have been compacted
        }
    }

    private async ValueTask<byte[]> ReadExactAsync(int count, CancellationToken ct)
    {
        var result = new byte[count];
        var copied = 0;
        while (copied < count)
        {
            if (_end == _start)
            {
                await FillAsync(ct).ConfigureAwait(false);
            }

            var n = Math.Min(count - copied, _end - _start);
            Buffer.BlockCopy(_buffer, _start, result, copied, n);
            _start += n;
            copied += n;
        }

        return result;
    }

    private async ValueTask FillAsync(CancellationToken ct)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        var n = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
        if (n == 0)
        {
            throw new RedisConnectionException("connection closed by the server");
        }

        _end += n;
    }
}

/// <summary>The server sent something that is not RESP2.</summary>
public sealed class RespProtocolException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RespProtocolException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RespProtocolException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RespProtocolException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>No usable connection to Redis (down, reconnecting, or the connection broke mid-command).</summary>
public sealed class RedisConnectionException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RedisConnectionException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RedisConnectionException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RedisConnectionException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>Redis answered with an error reply (<c>-ERR ...</c>).</summary>
public sealed class RedisServerException : Exception
{
    /// <summary>Creates the exception.</summary>
    public RedisServerException()
    {
    }

    /// <summary>Creates the exception.</summary>
    public RedisServerException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception.</summary>
    public RedisServerException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
