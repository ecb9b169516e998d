using System.Diagnostics;
using StackExchange.Redis;

namespace Gateway.State;

/// <summary>
/// The gateway's one <see cref="IConnectionMultiplexer"/> (registered in DI when <c>Gateway:State:Redis</c> is set):
/// StackExchange.Redis configured to fail fast while Redis is away (<see cref="BacklogPolicy.FailFast"/>, no command
/// backlog), never to abort on a failed first connect, and to reconnect with exponential backoff. Health comes from the
/// multiplexer's <see cref="IConnectionMultiplexer.ConnectionFailed"/> / <see cref="IConnectionMultiplexer.ConnectionRestored"/>
/// events on the interactive connection; <see cref="RunAsync{T}"/> times every call the state code makes and reports
/// it (operation = a fixed command name, never a key) to <see cref="CommandObserver"/>. Thread-safe.
/// </summary>
public sealed class RedisConnection : IAsyncDisposable
{
    private readonly bool _ownsMultiplexer;
    private volatile bool _failed;
    private long _restores;

    /// <summary>Wraps an existing multiplexer (tests; the connection does not own it unless <paramref name="ownsMultiplexer"/>).</summary>
    public RedisConnection(IConnectionMultiplexer multiplexer, bool ownsMultiplexer = false)
    {
        Multiplexer = multiplexer ?? throw new ArgumentNullException(nameof(multiplexer));
        _ownsMultiplexer = ownsMultiplexer;
        multiplexer.ConnectionFailed += OnFailed;
        multiplexer.ConnectionRestored += OnRestored;
    }

    /// <summary>The multiplexer.</summary>
    public IConnectionMultiplexer Multiplexer { get; }

    /// <summary>The database commands go to (the spec's <c>db=</c> / <c>defaultDatabase=</c>).</summary>
    public IDatabase Database => Multiplexer.GetDatabase();

    /// <summary>True while the interactive connection is up (from the multiplexer's connection events).</summary>
    public bool IsConnected => !_failed && Multiplexer.IsConnected;

    /// <summary>Reconnects after a failure (the first connect not included).</summary>
    public long RestoreCount => Interlocked.Read(ref _restores);

    /// <summary>Raised after the interactive connection is restored (Redis may have restarted empty).</summary>
    public event Action? Reconnected;

    /// <summary>Receives (operation, round trip, failed) for every call made through <see cref="RunAsync{T}"/>.</summary>
    public Action<string, TimeSpan, bool>? CommandObserver { get; set; }

    /// <summary>
    /// Parses the gateway's address format <c>host:port[,password=..][,user=..][,db=N]</c>, or any StackExchange.Redis
    /// configuration string, into options that fail fast and reconnect in the background. The password never appears
    /// in an error message.
    /// </summary>
    public static ConfigurationOptions ParseOptions(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        var parts = spec.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        for (int i = 1; i < parts.Length; i++)
        {
            if (parts[i].StartsWith("db=", StringComparison.OrdinalIgnoreCase))
            {
                parts[i] = "defaultDatabase=" + parts[i][3..];
            }
        }

        ConfigurationOptions o;
        try
        {
            o = ConfigurationOptions.Parse(string.Join(',', parts), ignoreUnknown: false);
        }
        catch (ArgumentException ex)
        {
            // The message may quote the spec; keep only the option names.
            var names = string.Join(", ", parts.Skip(1).Select(p => p.Split('=')[0]));
            throw new FormatException($"invalid Redis address (options: {names}): {ex.GetType().Name}");
        }

        bool has(string name) => parts.Skip(1).Any(p => p.StartsWith(name + "=", StringComparison.OrdinalIgnoreCase));
        o.AbortOnConnectFail = false;
        o.BacklogPolicy = BacklogPolicy.FailFast;
        if (!has("connectTimeout"))
        {
            o.ConnectTimeout = 2000;
        }

        if (!has("asyncTimeout"))
        {
            o.AsyncTimeout = 2000;
        }

        if (!has("syncTimeout"))
        {
            o.SyncTimeout = 2000;
        }

        o.ReconnectRetryPolicy = new ExponentialRetry(50, 2000);
        o.HeartbeatInterval = TimeSpan.FromMilliseconds(500); // notices a dead connection and retries connects this often
        o.ClientName = "llm-gateway";
        return o;
    }

    /// <summary>Connects in the background: returns at once whether or not Redis is reachable now.</summary>
    public static async Task<RedisConnection> ConnectAsync(ConfigurationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var mux = await ConnectionMultiplexer.ConnectAsync(options).ConfigureAwait(false);
        return new RedisConnection(mux, ownsMultiplexer: true);
    }

    /// <summary>Runs one Redis call, timing it under <paramref name="operation"/> (a command name such as <c>EVALSHA</c>).</summary>
    public async Task<T> RunAsync<T>(string operation, Func<IDatabase, Task<T>> call)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (!IsConnected)
        {
            CommandObserver?.Invoke(operation, TimeSpan.Zero, true);
            throw new RedisConnectionException(ConnectionFailureType.UnableToConnect, CommandFlags.None, "Redis is not connected", null, CommandStatus.WaitingToBeSent);
        }

        long started = Stopwatch.GetTimestamp();
        bool failed = true;
        try
        {
            var result = await call(Database).ConfigureAwait(false);
            failed = false;
            return result;
        }
        finally
        {
            CommandObserver?.Invoke(operation, Stopwatch.GetElapsedTime(started), failed);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        Multiplexer.ConnectionFailed -= OnFailed;
        Multiplexer.ConnectionRestored -= OnRestored;
        if (_ownsMultiplexer)
        {
            await Multiplexer.CloseAsync(allowCommandsToComplete: false).ConfigureAwait(false);
            Multiplexer.Dispose();
        }
    }

    /// <summary>True for the exceptions that mean "Redis is away or slow": fall back to local state.</summary>
    public static bool IsUnavailable(Exception ex) =>
        ex is RedisConnectionException or RedisTimeoutException or TimeoutException or RedisServerException or ObjectDisposedException;

    private void OnFailed(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType == ConnectionType.Interactive)
        {
            _failed = true;
        }
    }

    private void OnRestored(object? sender, ConnectionFailedEventArgs e)
    {
        if (e.ConnectionType == ConnectionType.Interactive)
        {
            _failed = false;
            Interlocked.Increment(ref _restores);
            Reconnected?.Invoke();
        }
    }
}
