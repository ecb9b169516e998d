using System.Globalization;

namespace Gateway.State;

/// <summary>Options of <see cref="RedisStateStore"/>.</summary>
public sealed record RedisStateStoreOptions
{
    /// <summary>Key prefix (several gateways can share one Redis with different prefixes).</summary>
    public string Prefix { get; init; } = "gw:";

    /// <summary>This replica's id (stable across restarts, e.g. the pod name).</summary>
    public string ReplicaId { get; init; } = Environment.MachineName + "-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);

    /// <summary>How long a replica's in-flight counts live in Redis without a sync (a dead replica's load fades out).</summary>
    public TimeSpan InFlightTtl { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// <see cref="IStateStore"/> over Redis (via <see cref="RedisClient"/>), degrading to local state while Redis is away.
/// Layout (prefix <c>gw:</c>):
/// <list type="bullet">
/// <item><c>gw:replicas</c> SET of replica ids;</item>
/// <item><c>gw:svc:{replica}</c> HASH tenant path → this replica's cumulative service (absolute values, written with
/// HSET, so re-sending after an outage or a Redis restart is idempotent); cluster service = sum over replicas
/// (Lua, EVALSHA);</item>
/// <item><c>gw:inflight:{replica}</c> HASH worker → requests in flight from this replica, expiring after
/// <see cref="RedisStateStoreOptions.InFlightTtl"/> without a sync;</item>
/// <item><c>gw:win:{key}</c> quota window counters: INCRBYFLOAT + PEXPIRE in one Lua script; increments made while
/// Redis is away are kept locally and flushed (INCRBYFLOAT) when it returns, if the window has not expired;</item>
/// <item><c>gw:sess:{id}</c> session → worker, SET PX; bindings made while away are written when it returns with
/// their remaining TTL.</item>
/// </list>
/// </summary>
public sealed class RedisStateStore : IStateStore
{
    private static readonly LuaScript SumHashes = new("""
        local ids = redis.call('SMEMBERS', KEYS[1])
        local acc = {}
        local order = {}
        for _, id in ipairs(ids) do
          local flat = redis.call('HGETALL', ARGV[1] .. id)
          for i = 1, #flat, 2 do
            local f = flat[i]
            if acc[f] == nil then acc[f] = 0; order[#order + 1] = f end
            acc[f] = acc[f] + tonumber(flat[i + 1])
          end
        end
        local out = {}
        for _, f in ipairs(order) do
          out[#out + 1] = f
          out[#out + 1] = string.format('%.17g', acc[f])
        end
        return out
        """);

    private static readonly LuaScript IncrWindow = new("""
        local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
        if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
        return v
        """);

    private readonly RedisClient _redis;
    private readonly RedisStateStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _syncLock = new(1, 1);

    // This replica's own cumulative totals, and which changed since the last successful push.
    private readonly Dictionary<string, double> _ownService = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyService = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _ownInFlight = new(StringComparer.Ordinal);

    // Cluster snapshots from the last successful sync, and our own totals at that moment.
    private Dictionary<string, double> _clusterService = new(StringComparer.Ordinal);
    private Dictionary<string, double> _ownServiceAtSnapshot = new(StringComparer.Ordinal);
    private Dictionary<string, long> _clusterInFlight = new(StringComparer.Ordinal);
    private Dictionary<string, long> _ownInFlightAtSnapshot = new(StringComparer.Ordinal);

    // Local fallbacks while Redis is away.
    private readonly Dictionary<string, LocalWindow> _windows = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Worker, DateTimeOffset Expires)> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Worker, DateTimeOffset Expires)> _pendingSessions = new(StringComparer.Ordinal);
    private volatile bool _fullResync = true;
    private volatile bool _shared;

    /// <summary>Creates the store over a client (the store does not own the client unless <paramref name="ownsClient"/>).</summary>
    public RedisStateStore(RedisClient redis, RedisStateStoreOptions? options = null, TimeProvider? time = null, bool ownsClient = false)
    {
        _redis = redis ?? throw new ArgumentNullException(nameof(redis));
        _options = options ?? new RedisStateStoreOptions();
        _time = time ?? TimeProvider.System;
        OwnsClient = ownsClient;
        _redis.Reconnected += () => _fullResync = true; // Redis may have restarted empty: re-send everything we own
    }

    /// <inheritdoc />
    public string Name => "redis";

    /// <inheritdoc />
    public bool IsShared => _shared && _redis.IsConnected;

    /// <summary>This replica's id.</summary>
    public string ReplicaId => _options.ReplicaId;

    private bool OwnsClient { get; }

    private string Key(string kind, string id) => _options.Prefix + kind + id;

    /// <inheritdoc />
    public void AddService(string tenantPath, double cost)
    {
        ArgumentNullException.ThrowIfNull(tenantPath);
        lock (_lock)
        {
            _ownService[tenantPath] = _ownService.GetValueOrDefault(tenantPath) + cost;
            _dirtyService.Add(tenantPath);
        }
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> GetService()
    {
        lock (_lock)
        {
            var result = new Dictionary<string, double>(_clusterService, StringComparer.Ordinal);
            foreach (var (path, own) in _ownService)
            {
                result[path] = result.GetValueOrDefault(path) + own - _ownServiceAtSnapshot.GetValueOrDefault(path);
            }

            return result;
        }
    }

    /// <inheritdoc />
    public void AddInFlight(string worker, long delta)
    {
        ArgumentNullException.ThrowIfNull(worker);
        lock (_lock)
        {
            _ownInFlight[worker] = _ownInFlight.GetValueOrDefault(worker) + delta;
        }
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, long> GetInFlight()
    {
        lock (_lock)
        {
            var result = new Dictionary<string, long>(_clusterInFlight, StringComparer.Ordinal);
            foreach (var (w, own) in _ownInFlight)
            {
                result[w] = result.GetValueOrDefault(w) + own - _ownInFlightAtSnapshot.GetValueOrDefault(w);
            }

            return result;
        }
    }

    /// <inheritdoc />
    public async ValueTask<double> IncrementWindowAsync(string key, double amount, TimeSpan expiry, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var now = _time.GetUtcNow();
        if (_redis.IsConnected)
        {
            try
            {
                var reply = await _redis.ScriptAsync(IncrWindow, [Key("win:", key)], [Num(amount), Ms(expiry)], ct).ConfigureAwait(false);
                var total = reply.AsDouble();
                lock (_lock)
                {
                    var w = LocalWindowFor(key, expiry, now);
                    w.LastRemote = total; // cluster value (ours included), without increments still to flush
                    return total + w.Unflushed;
                }
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
            {
                // fall through to local accounting
            }
        }

        lock (_lock)
        {
            var w = LocalWindowFor(key, expiry, now);
            w.Unflushed += amount;
            return w.LastRemote + w.Unflushed; // last cluster value we saw + what we added since
        }
    }

    /// <inheritdoc />
    public async ValueTask<string?> GetSessionAsync(string sessionId, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        if (_redis.IsConnected)
        {
            try
            {
                var reply = await _redis.ExecuteAsync(["GET", Key("sess:", sessionId)], ct).ConfigureAwait(false);
                if (!reply.IsNull)
                {
                    return reply.Text;
                }
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
            {
                // local fallback below
            }
        }

        lock (_lock)
        {
            return _sessions.TryGetValue(sessionId, out var s) && s.Expires > _time.GetUtcNow() ? s.Worker : null;
        }
    }

    /// <inheritdoc />
    public async ValueTask SetSessionAsync(string sessionId, string worker, TimeSpan ttl, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(worker);
        var expires = _time.GetUtcNow() + ttl;
        lock (_lock)
        {
            _sessions[sessionId] = (worker, expires);
            if (_sessions.Count > 100_000)
            {
                PruneSessions();
            }
        }

        if (_redis.IsConnected)
        {
            try
            {
                await _redis.ExecuteAsync(["SET", Key("sess:", sessionId), worker, "PX", Ms(ttl)], ct).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
            {
                // queue for the next sync
            }
        }

        lock (_lock)
        {
            _pendingSessions[sessionId] = (worker, expires);
        }
    }

    /// <inheritdoc />
    public async ValueTask SyncAsync(CancellationToken ct = default)
    {
        if (!_redis.IsConnected)
        {
            _shared = false;
            return;
        }

        await _syncLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await SyncCoreAsync(ct).ConfigureAwait(false);
            _shared = true;
        }
        catch (Exception ex) when (ex is RedisConnectionException or TimeoutException)
        {
            _shared = false;
            _fullResync = true; // we do not know which writes landed; absolute values make re-sending safe
        }
        finally
        {
            _syncLock.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        if (OwnsClient)
        {
            await _redis.DisposeAsync().ConfigureAwait(false);
        }

        _syncLock.Dispose();
    }

    private async Task SyncCoreAsync(CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var full = _fullResync;
        _fullResync = false;
        var commands = new List<IReadOnlyList<string>> { new[] { "SADD", _options.Prefix + "replicas", _options.ReplicaId } };
        Dictionary<string, double> ownSnapshot;
        Dictionary<string, long> inflightSnapshot;
        List<(string Key, LocalWindow W, double Amount)> windowFlush = [];
        List<KeyValuePair<string, (string Worker, DateTimeOffset Expires)>> sessionFlush;
        lock (_lock)
        {
            ownSnapshot = new Dictionary<string, double>(_ownService, StringComparer.Ordinal);
            inflightSnapshot = new Dictionary<string, long>(_ownInFlight, StringComparer.Ordinal);
            var svc = new List<string> { "HSET", Key("svc:", _options.ReplicaId) };
            foreach (var path in full ? (IEnumerable<string>)_ownService.Keys : _dirtyService)
            {
                svc.Add(path);
                svc.Add(Num(_ownService[path]));
            }

            _dirtyService.Clear();
            if (svc.Count > 2)
            {
                commands.Add(svc);
            }

            var inflightKey = Key("inflight:", _options.ReplicaId);
            var hset = new List<string> { "HSET", inflightKey };
            foreach (var (w, n) in _ownInFlight)
            {
                // Absolute values, zeros included (no DEL + HSET gap for readers).
                hset.Add(w);
                hset.Add(n.ToString(CultureInfo.InvariantCulture));
            }

            if (hset.Count > 2)
            {
                commands.Add(hset);
                commands.Add(["PEXPIRE", inflightKey, Ms(_options.InFlightTtl)]);
            }

            foreach (var (key, w) in _windows)
            {
                if (w.Unflushed != 0 && w.Expires > now)
                {
                    windowFlush.Add((key, w, w.Unflushed));
                }
            }

            sessionFlush = [.. _pendingSessions];
            _pendingSessions.Clear();
        }

        try
        {
            var windowReplyIndex = new int[windowFlush.Count];
            for (var i = 0; i < windowFlush.Count; i++)
            {
                var (key, w, amount) = windowFlush[i];
                windowReplyIndex[i] = commands.Count;
                commands.Add(["INCRBYFLOAT", Key("win:", key), Num(amount)]);
                commands.Add(["PEXPIRE", Key("win:", key), Ms(w.Expires - now), "NX"]); // a restarted Redis lost the key's TTL too
            }

            foreach (var (id, s) in sessionFlush)
            {
                var left = s.Expires - now;
                if (left > TimeSpan.Zero)
                {
                    commands.Add(["SET", Key("sess:", id), s.Worker, "PX", Ms(left)]);
                }
            }

            var replies = await _redis.PipelineAsync(commands, ct).ConfigureAwait(false);
            foreach (var r in replies)
            {
                if (r.Kind == RespKind.Error)
                {
                    throw new RedisServerException(r.Text!);
                }
            }

            lock (_lock)
            {
                for (var i = 0; i < windowFlush.Count; i++)
                {
                    var (key, w, amount) = windowFlush[i];
                    w.Unflushed -= amount;
                    w.LastRemote = replies[windowReplyIndex[i]].AsDouble();
                    if (w.Expires <= now && w.Unflushed == 0)
                    {
                        _windows.Remove(key);
                    }
                }
            }

            var svcReply = await _redis.ScriptAsync(SumHashes, [_options.Prefix + "replicas"], [_options.Prefix + "svc:"], ct).ConfigureAwait(false);
            var inflightReply = await _redis.ScriptAsync(SumHashes, [_options.Prefix + "replicas"], [_options.Prefix + "inflight:"], ct).ConfigureAwait(false);
            var cluster = new Dictionary<string, double>(StringComparer.Ordinal);
            var items = svcReply.Items ?? [];
            for (var i = 0; i + 1 < items.Count; i += 2)
            {
                cluster[items[i].Text!] = items[i + 1].AsDouble();
            }

            var clusterInFlight = new Dictionary<string, long>(StringComparer.Ordinal);
            items = inflightReply.Items ?? [];
            for (var i = 0; i + 1 < items.Count; i += 2)
            {
                clusterInFlight[items[i].Text!] = (long)Math.Round(items[i + 1].AsDouble());
            }

            lock (_lock)
            {
                _clusterService = cluster;
                _ownServiceAtSnapshot = ownSnapshot;
                _clusterInFlight = clusterInFlight;
                _ownInFlightAtSnapshot = inflightSnapshot;
            }
        }
        catch
        {
            lock (_lock)
            {
                foreach (var path in ownSnapshot.Keys)
                {
                    _dirtyService.Add(path);
                }

                foreach (var (id, s) in sessionFlush)
                {
                    _pendingSessions.TryAdd(id, s);
                }
            }

            throw;
        }
    }

    private LocalWindow LocalWindowFor(string key, TimeSpan expiry, DateTimeOffset now)
    {
        if (!_windows.TryGetValue(key, out var w) || (w.Expires <= now && w.Unflushed == 0))
        {
            w = new LocalWindow { Expires = now + expiry };
            _windows[key] = w;
            if (_windows.Count > 10_000)
            {
                foreach (var k in _windows.Where(kv => kv.Value.Expires <= now).Select(kv => kv.Key).ToList())
                {
                    _windows.Remove(k);
                }
            }
        }

        return w;
    }

    private void PruneSessions()
    {
        var now = _time.GetUtcNow();
        foreach (var k in _sessions.Where(kv => kv.Value.Expires <= now).Select(kv => kv.Key).ToList())
        {
            _sessions.Remove(k);
        }
    }

    private static string Num(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    private static string Ms(TimeSpan t) => Math.Max(1, (long)Math.Ceiling(t.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture);

    private sealed class LocalWindow
    {
        public DateTimeOffset Expires { get; set; }

        /// <summary>Increments made locally and not yet in Redis.</summary>
        public double Unflushed { get; set; }

        /// <summary>Cluster value (without our unflushed part) last seen.</summary>
        public double LastRemote { get; set; }
    }
}
