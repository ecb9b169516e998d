using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.State;

/// <summary>Connection options of <see cref="RedisClient"/>.</summary>
public sealed record RedisOptions
{
    /// <summary>Host name or address.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>TCP port.</summary>
    public int Port { get; init; } = 6379;

    /// <summary>ACL user (Redis 6+); null uses the default user.</summary>
    public string? User { get; init; }

    /// <summary>Password for AUTH; null skips AUTH.</summary>
    public string? Password { get; init; }

    /// <summary>Database index for SELECT (0 skips SELECT).</summary>
    public int Database { get; init; }

    /// <summary>Connect (and handshake) timeout.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Per-command timeout (the reply slot stays in the pipeline; a late reply is discarded).</summary>
    public TimeSpan CommandTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>First reconnect delay; doubles per failed attempt up to <see cref="MaxReconnectDelay"/>.</summary>
    public TimeSpan MinReconnectDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Largest reconnect delay.</summary>
    public TimeSpan MaxReconnectDelay { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Parses "host:port[,password=..][,user=..][,db=N]" (the password never appears in errors).</summary>
    public static RedisOptions Parse(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        var parts = spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var o = new RedisOptions();
        var hostPort = parts[0];
        var colon = hostPort.LastIndexOf(':');
        o = colon > 0
            ? o with { Host = hostPort[..colon], Port = int.Parse(hostPort[(colon + 1)..], CultureInfo.InvariantCulture) }
            : o with { Host = hostPort };
        foreach (var p in parts.Skip(1))
        {
            var eq = p.IndexOf('=', StringComparison.Ordinal);
            var (k, v) = eq > 0 ? (p[..eq].ToLowerInvariant(), p[(eq + 1)..]) : (p.ToLowerInvariant(), string.Empty);
            o = k switch
            {
                "password" => o with { Password = v },
                "user" => o with { User = v },
                "db" => o with { Database = int.Parse(v, CultureInfo.InvariantCulture) },
                _ => throw new FormatException($"unknown redis option '{k}'"),
            };
        }

        return o;
    }
}

/// <summary>
/// A small RESP2 client: one TCP connection, many commands in flight (pipelining; replies are matched to commands
/// in order), per-command timeouts, automatic reconnect with exponential backoff (AUTH and SELECT replayed on each
/// connect), and Lua scripts with EVALSHA falling back to EVAL on NOSCRIPT. While disconnected, commands fail fast
/// with <see cref="RedisConnectionException"/> so callers can fall back to local state. Thread-safe.
/// </summary>
public sealed class RedisClient : IAsyncDisposable
{
    private readonly RedisOptions _options;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly object _stateLock = new();
    private readonly CancellationTokenSource _disposed = new();
    private Connection? _connection;
    private Task? _reconnectLoop;
    private long _connects;

    private RedisClient(RedisOptions options) => _options = options;

    /// <summary>True while a connection is up.</summary>
    public bool IsConnected => Volatile.Read(ref _connection) is { Broken: false };

    /// <summary>Number of successful connects (first connect included).</summary>
    public long ConnectCount => Interlocked.Read(ref _connects);

    /// <summary>Raised (on a pool thread) after every successful reconnect (not the first connect).</summary>
    public event Action? Reconnected;

    /// <summary>Connects (throws if the first connect fails) and keeps reconnecting afterwards.</summary>
    public static async Task<RedisClient> ConnectAsync(RedisOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var client = new RedisClient(options);
        var conn = await client.OpenAsync(ct).ConfigureAwait(false);
        client.Install(conn, first: true);
        return client;
    }

    /// <summary>Creates a client that connects in the background (does not throw when Redis is down at start).</summary>
    public static RedisClient ConnectInBackground(RedisOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var client = new RedisClient(options);
        client.StartReconnect();
        return client;
    }

    /// <summary>Sends a command and awaits its reply. Error replies throw <see cref="RedisServerException"/>.</summary>
    public async Task<RespValue> ExecuteAsync(IReadOnlyList<string> args, CancellationToken ct = default)
    {
        var reply = await ExecuteRawAsync(args, ct).ConfigureAwait(false);
        return reply.Kind == RespKind.Error ? throw new RedisServerException(reply.Text!) : reply;
    }

    /// <summary>Sends a command.</summary>
    public Task<RespValue> ExecuteAsync(params string[] args) => ExecuteAsync((IReadOnlyList<string>)args);

    /// <summary>
    /// Sends several commands in one write (one round trip) and returns their replies in order; error replies are
    /// returned as values, not thrown.
    /// </summary>
    public async Task<RespValue[]> PipelineAsync(IReadOnlyList<IReadOnlyList<string>> commands, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(commands);
        if (commands.Count == 0)
        {
            return [];
        }

        var observer = CommandObserver;
        if (observer is null)
        {
            return await PipelineCoreAsync(commands, ct).ConfigureAwait(false);
        }

        long started = System.Diagnostics.Stopwatch.GetTimestamp();
        bool failed = true;
        try
        {
            var replies = await PipelineCoreAsync(commands, ct).ConfigureAwait(false);
            failed = false;
            return replies;
        }
        finally
        {
            // The operation label is the command verb the code sent (GET, EVALSHA, ...), never a key or value.
            observer(commands.Count == 1 ? commands[0][0] : "PIPELINE", System.Diagnostics.Stopwatch.GetElapsedTime(started), failed);
        }
    }

    /// <summary>
    /// Called after every command or pipeline with its verb (<c>PIPELINE</c> for several), duration and whether it
    /// failed (connection, timeout): feeds the Redis health metrics. Error replies are answers, not failures.
    /// </summary>
    public Action<string, TimeSpan, bool>? CommandObserver { get; set; }

    private async Task<RespValue[]> PipelineCoreAsync(IReadOnlyList<IReadOnlyList<string>> commands, CancellationToken ct)
    {

        var conn = Current();
        var slots = new TaskCompletionSource<RespValue>[commands.Count];
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            conn.Buffer.Clear();
            for (var i = 0; i < commands.Count; i++)
            {
                RespValue.WriteCommand(conn.Buffer, commands[i]);
                slots[i] = new TaskCompletionSource<RespValue>(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            await conn.SendAsync(slots, CancellationToken.None).ConfigureAwait(false); // never cancel a half-written command
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            Fail(conn, ex);
            throw new RedisConnectionException("redis write failed", ex);
        }
        finally
        {
            _writeLock.Release();
        }

        var results = new RespValue[slots.Length];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.CommandTimeout);
        for (var i = 0; i < slots.Length; i++)
        {
            try
            {
                results[i] = await slots[i].Task.WaitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"redis command timed out after {_options.CommandTimeout.TotalMilliseconds} ms");
            }
        }

        return results;
    }

    /// <summary>Runs a Lua script: EVALSHA, and EVAL when the server answers NOSCRIPT (e.g. after a restart).</summary>
    public async Task<RespValue> ScriptAsync(LuaScript script, IReadOnlyList<string> keys, IReadOnlyList<string> args, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(script);
        var reply = await ExecuteRawAsync(ScriptArgs("EVALSHA", script.Sha1, keys, args), ct).ConfigureAwait(false);
        if (reply.Kind == RespKind.Error && reply.Text!.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            reply = await ExecuteRawAsync(ScriptArgs("EVAL", script.Source, keys, args), ct).ConfigureAwait(false);
        }

        return reply.Kind == RespKind.Error ? throw new RedisServerException(reply.Text!) : reply;
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (_disposed.IsCancellationRequested)
        {
            return;
        }

        await _disposed.CancelAsync().ConfigureAwait(false);
        Connection? conn;
        lock (_stateLock)
        {
            conn = _connection;
            _connection = null;
        }

        if (conn is not null)
        {
            Fail(conn, new ObjectDisposedException(nameof(RedisClient)));
            await conn.ReaderTask.ConfigureAwait(false);
        }

        if (_reconnectLoop is not null)
        {
            await _reconnectLoop.ConfigureAwait(false);
        }

        _disposed.Dispose();
        _writeLock.Dispose();
    }

    private static string[] ScriptArgs(string verb, string scriptOrSha, IReadOnlyList<string> keys, IReadOnlyList<string> args)
    {
        var a = new string[3 + keys.Count + args.Count];
        a[0] = verb;
        a[1] = scriptOrSha;
        a[2] = keys.Count.ToString(CultureInfo.InvariantCulture);
        for (var i = 0; i < keys.Count; i++) { a[3 + i] = keys[i]; }
        for (var i = 0; i < args.Count; i++) { a[3 + keys.Count + i] = args[i]; }
        return a;
    }

    private async Task<RespValue> ExecuteRawAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(args);
        return (await PipelineAsync([args], ct).ConfigureAwait(false))[0];
    }

    private Connection Current()
    {
        ObjectDisposedException.ThrowIf(_disposed.IsCancellationRequested, this);
        var c = Volatile.Read(ref _connection);
        return c is { Broken: false } ? c : throw new RedisConnectionException("not connected to redis (reconnecting)");
    }

    private async Task<Connection> OpenAsync(CancellationToken ct)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct, _disposed.Token);
        cts.CancelAfter(_options.ConnectTimeout);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(_options.Host, _options.Port, cts.Token).ConfigureAwait(false);
            var stream = new NetworkStream(socket, ownsSocket: true);
            var conn = new Connection(stream);
            var handshake = new List<IReadOnlyList<string>>();
            if (_options.Password is not null)
            {
                handshake.Add(_options.User is null ? ["AUTH", _options.Password] : ["AUTH", _options.User, _options.Password]);
            }

            if (_options.Database != 0)
            {
                handshake.Add(["SELECT", _options.Database.ToString(CultureInfo.InvariantCulture)]);
            }

            handshake.Add(["PING"]);
            foreach (var cmd in handshake)
            {
                conn.Buffer.Clear();
                RespValue.WriteCommand(conn.Buffer, cmd);
                await stream.WriteAsync(conn.Buffer.Written, cts.Token).ConfigureAwait(false);
                var reply = await conn.Reader.ReadAsync(cts.Token).ConfigureAwait(false);
                if (reply.Kind == RespKind.Error)
                {
                    await stream.DisposeAsync().ConfigureAwait(false);
                    throw new RedisServerException($"redis handshake ({cmd[0]}) failed: {reply.Text}"); // never echo the password
                }
            }

            return conn;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            socket.Dispose();
            throw new RedisConnectionException($"connect to {_options.Host}:{_options.Port} timed out");
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            throw new RedisConnectionException($"connect to {_options.Host}:{_options.Port} failed: {ex.SocketErrorCode}", ex);
        }
        catch (IOException ex)
        {
            socket.Dispose();
            throw new RedisConnectionException($"connect to {_options.Host}:{_options.Port} failed", ex);
        }
    }

    private void Install(Connection conn, bool first)
    {
        lock (_stateLock)
        {
            _connection = conn;
        }

        Interlocked.Increment(ref _connects);
        conn.ReaderTask = Task.Run(() => ReadLoopAsync(conn));
        if (!first)
        {
            Reconnected?.Invoke();
        }
    }

    private async Task ReadLoopAsync(Connection conn)
    {
        try
        {
            while (!conn.Broken)
            {
                var reply = await conn.Reader.ReadAsync(_disposed.Token).ConfigureAwait(false);
                if (!conn.Pending.TryDequeue(out var slot))
                {
                    throw new RespProtocolException("reply without a pending command");
                }

                slot.TrySetResult(reply); // a timed-out caller is gone; its reply is dropped here, order intact
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException
            or RedisConnectionException or RespProtocolException)
        {
            Fail(conn, ex);
        }
    }

    private void Fail(Connection conn, Exception ex)
    {
        bool wasCurrent;
        lock (_stateLock)
        {
            if (conn.Broken)
            {
                return;
            }

            conn.Broken = true;
            wasCurrent = ReferenceEquals(_connection, conn);
            if (wasCurrent)
            {
                _connection = null;
            }
        }

        conn.Dispose();
        var error = new RedisConnectionException("redis connection lost", ex);
        while (conn.Pending.TryDequeue(out var slot))
        {
            slot.TrySetException(error);
        }

        if (wasCurrent && !_disposed.IsCancellationRequested)
        {
            StartReconnect();
        }
    }

    private void StartReconnect()
    {
        lock (_stateLock)
        {
            if (_reconnectLoop is { IsCompleted: false })
            {
                return;
            }

            _reconnectLoop = Task.Run(ReconnectLoopAsync);
        }
    }

    private async Task ReconnectLoopAsync()
    {
        var delay = _options.MinReconnectDelay;
        while (!_disposed.IsCancellationRequested)
        {
            try
            {
                var conn = await OpenAsync(_disposed.Token).ConfigureAwait(false);
                Install(conn, first: Interlocked.Read(ref _connects) == 0);
                return;
            }
            catch (Exception ex) when (ex is RedisConnectionException or RedisServerException or IOException or OperationCanceledException)
            {
                try
                {
                    await Task.Delay(delay, _disposed.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxReconnectDelay.Ticks));
            }
        }
    }

    private sealed class Connection(NetworkStream stream) : IDisposable
    {
        public NetworkStream Stream { get; } = stream;
        public RespReader Reader { get; } = new(stream);
        public ArrayBufferWriter Buffer { get; } = new();
        public System.Collections.Concurrent.ConcurrentQueue<TaskCompletionSource<RespValue>> Pending { get; } = new();
        public volatile bool Broken;
        public Task ReaderTask { get; set; } = Task.CompletedTask;

        public async Task SendAsync(TaskCompletionSource<RespValue>[] slots, CancellationToken ct)
        {
            // Slots are queued before the bytes leave, under the write lock, so the reader matches replies in order.
            if (Broken)
            {
                throw new IOException("connection already failed");
            }

            foreach (var s in slots)
            {
                Pending.Enqueue(s);
            }

            await Stream.WriteAsync(Buffer.Written, ct).ConfigureAwait(false);
        }

        public void Dispose() => Stream.Dispose();
    }
}

/// <summary>A Lua script with its SHA1 (for EVALSHA).</summary>
public sealed class LuaScript
{
    /// <summary>Creates the script.</summary>
    public LuaScript(string source)
    {
        Source = source ?? throw new ArgumentNullException(nameof(source));
#pragma warning disable CA5350 // SHA1 is what Redis names scripts by; not used for security
        Sha1 = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(source)));
#pragma warning restore CA5350
    }

    /// <summary>Script text.</summary>
    public string Source { get; }

    /// <summary>Lower-case hex SHA1 of the text.</summary>
    public string Sha1 { get; }
}
