namespace LoadGen.Client;

/// <summary>
/// Reads LF- (or CRLF-) terminated lines of an SSE stream as byte slices, without decoding to strings.
/// The returned memory is valid until the next call.
/// </summary>
public sealed class SseLineReader
{
    private const int MaxLine = 16 * 1024 * 1024;

    private readonly Stream _stream;
    private byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;
    private bool _eof;

    /// <summary>Wraps <paramref name="stream"/>.</summary>
    public SseLineReader(Stream stream) => _stream = stream;

    /// <summary>The next line without its terminator, or null at the end of the stream
    /// (a final unterminated fragment is returned as a line).</summary>
    public async ValueTask<ReadOnlyMemory<byte>?> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            int nl = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (nl >= 0)
            {
                int len = nl - _start;
                if (len > 0 && _buffer[nl - 1] == (byte)'\r')
                {
                    len--;
                }

                var line = new ReadOnlyMemory<byte>(_buffer, _start, len);
                _start = nl + 1;
                return line;
            }

            if (_eof)
            {
                if (_start < _end)
                {
                    var rest = new ReadOnlyMemory<byte>(_buffer, _start, _end - _start);
                    _start = _end;
                    return rest;
                }

                return null;
            }

            if (_start > 0)
            {
                Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                _end -= _start;
                _start = 0;
            }

            if (_end == _buffer.Length)
            {
                if (_buffer.Length >= MaxLine)
                {
                    throw new InvalidDataException("SSE line longer than 16 MiB");
                }

                Array.Resize(ref _buffer, _buffer.Length * 2);
            }

            int n = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
            if (n == 0)
            {
                _eof = true;
            }

            _end += n;
        }
    }
}
