using System.Buffers;
using System.Text.Json;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>Writes <c>data: {json}\n\n</c> SSE events straight into the response pipe.</summary>
internal sealed class SseChunkWriter
{
    private static readonly byte[] DataPrefix = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();
    private readonly System.IO.Pipelines.PipeWriter _pipe;
    private readonly Utf8JsonWriter _json;

    public SseChunkWriter(System.IO.Pipelines.PipeWriter pipe)
    {
        _pipe = pipe;
        _json = new Utf8JsonWriter((IBufferWriter<byte>)pipe, HttpJson.WriterOptions);
    }

    public void Write(Action<Utf8JsonWriter> write)
    {
        _pipe.Write(DataPrefix);
        _json.Reset(_pipe);
        write(_json);
        _json.Flush();
        _pipe.Write(EventEnd);
    }

    /// <summary>Writes a named event (<c>event: NAME\ndata: {json}\n\n</c>).</summary>
    public void WriteEvent(string name, Action<Utf8JsonWriter> write)
    {
        _pipe.Write(System.Text.Encoding.UTF8.GetBytes("event: " + name + "\n"));
        Write(write);
    }

    /// <summary>An SSE comment line (keeps idle connections alive, detects gone clients).</summary>
    public void WriteComment(string text) => _pipe.Write(System.Text.Encoding.UTF8.GetBytes(": " + text + "\n\n"));

    public void WriteDone() => _pipe.Write(Done);

    public async ValueTask FlushAsync(CancellationToken ct)
    {
        var result = await _pipe.FlushAsync(ct).ConfigureAwait(false);
        if (result.IsCanceled || result.IsCompleted)
        {
            throw new OperationCanceledException("the client closed the stream");
        }
    }
}
