using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Infrastructure;

/// <summary>How a <see cref="ScriptedWorker"/> answers inference (POST) requests.</summary>
public enum ScriptedFault
{
    /// <summary>Accepts the request, reads it, never answers (the connection stays open).</summary>
    Stall,

    /// <summary>Answers 200 text/event-stream with events that are not JSON, raw bytes, a lone surrogate, then closes without [DONE].</summary>
    GarbageSse,

    /// <summary>Answers 200 text/event-stream whose first event is an OpenAI error (as a worker that is shutting down streams), then [DONE].</summary>
    ErrorFirstEvent,
}

/// <summary>
/// A misbehaving worker on a raw loopback socket (no HTTP server library to tidy its answers): probes (GET
/// <c>/v1/models</c>, <c>/worker/state</c>, <c>/healthz</c>) are answered properly, so the gateway keeps it eligible,
/// and every POST gets the scripted fault.
/// </summary>
public sealed class ScriptedWorker : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _held = [];
    private readonly ScriptedFault _fault;
    private int _posts;

    public ScriptedWorker(ScriptedFault fault)
    {
        _fault = fault;
        _listener.Start();
        _ = AcceptLoopAsync();
    }

    public string Url => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public int Posts => Volatile.Read(ref _posts);

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            lock (_held)
            {
                _held.Add(client);
            }

            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            var stream = client.GetStream();
            var buffer = new List<byte>();
            var chunk = new byte[8192];
            while (!_stop.IsCancellationRequested)
            {
                int end;
                while ((end = IndexOfHeadEnd(buffer)) < 0)
                {
                    int n = await stream.ReadAsync(chunk, _stop.Token);
                    if (n == 0)
                    {
                        return;
                    }

                    buffer.AddRange(chunk.AsSpan(0, n));
                }

                string head = Encoding.ASCII.GetString(buffer.GetRange(0, end).ToArray());
                buffer.RemoveRange(0, end + 4);
                string[] requestLine = head.Split("\r\n")[0].Split(' ');
                if (requestLine[0] != "POST")
                {
                    await stream.WriteAsync(Probe(requestLine[1]), _stop.Token);
                    continue;
                }

                Interlocked.Increment(ref _posts);
                if (_fault == ScriptedFault.Stall)
                {
                    // Read whatever comes, answer nothing, until the gateway gives up on the connection.
                    while (await stream.ReadAsync(chunk, _stop.Token) > 0)
                    {
                    }

                    return;
                }

                await stream.WriteAsync(_fault == ScriptedFault.ErrorFirstEvent ? ErrorFirstStream : GarbageStream, _stop.Token);
                return; // close
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or SocketException)
        {
        }
        finally
        {
            client.Dispose();
        }
    }

    private static int IndexOfHeadEnd(List<byte> b)
    {
        for (int i = 0; i + 3 < b.Count; i++)
        {
            if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n')
            {
                return i;
            }
        }

        return -1;
    }

    private static byte[] Probe(string path)
    {
        string body = path switch
        {
            "/v1/models" => """{"object":"list","data":[{"id":"llama3-8b","object":"model","created":0,"owned_by":"scripted"}]}""",
            "/worker/state" => """{"model":"llama3-8b","waiting_requests":0,"running_requests":0,"kv_blocks_total":1000,"kv_blocks_used":0,"kv_blocks_free":1000}""",
            "/healthz" or "/readyz" => "ok",
            _ => "",
        };
        int status = body.Length > 0 ? 200 : 404;
        return Encoding.ASCII.GetBytes($"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n{body}");
    }

    private static readonly byte[] GarbageStream =
    [
        .. "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"u8,
        .. "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"u8,
        .. "data: {not json at all\n\n"u8,
        0x00, 0xFF, 0xFE, .. "\n\n"u8,
        .. "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"\\ud800\"}}]}}]}\n\n"u8,
        .. "event: ???\nretry: -1\n: comment\n\n"u8,
        .. "data: {\"usage\":{\"prompt_tokens\":\"many\"}}\n\n"u8,
    ];

    private static readonly byte[] ErrorFirstStream =
    [
        .. "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"u8,
        .. "data: {\"error\":{\"message\":\"The worker is shutting down.\",\"type\":\"server_error\",\"param\":null,\"code\":\"worker_shutting_down\"}}\n\n"u8,
        .. "data: [DONE]\n\n"u8,
    ];

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        lock (_held)
        {
            foreach (var c in _held)
            {
                c.Dispose();
            }
        }

        _stop.Dispose();
    }
}
