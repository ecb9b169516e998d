using System.Globalization;
using StackExchange.Redis;

namespace Gateway.State;

/// <summary>Options of <see cref="RedisStateStore"/>.</summary>
public sealed record RedisStateStoreOptions
{
    /// <summary>Key prefix (several gateways can share one Redis with different prefixes).</summary>
    public string Prefix { get; init; } = "gw:";

    /// <summary>This replica's id (stable across restarts, e.g. the pod name).</summary>
    public string ReplicaId { get; init; } = Environment.MachineName + "-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
}

/// <summary>
/// <see cref="IStateStore"/> over Redis (StackExchange.Redis through <see cref="RedisConnection"/>), degrading to local
/// state while Redis is away.
/// Layout (prefix <c>gw:</c>):
/// <list type="bullet">
/// <item><c>gw:replicas</c> SET of replica ids;</item>
/// <item><c>gw:svc:{replica}</c> HASH tenant path → this replica's cumulative service (absolute values, written with
/// HSET, so re-sending after an outage or a Redis restart is idempotent); cluster service = sum over replicas
/// (one Lua script);</item>
/// <item><c>gw:win:{key}</c> quota window counters: INCRBYFLOAT + PEXPIRE in one Lua script; increments made while
/// Redis is away are kept locally and flushed (INCRBYFLOAT) when it returns, if the window has not expired;</item>
/// <item><c>gw:sess:{id}</c> session → worker, SET PX (the binding's TTL); bindings made while away are written
/// when it returns with their remaining TTL.</item>
/// </list>
/// </summary>
public sealed class RedisStateStore : IStateStore
{
    // KEYS[1] the replica set; ARGV[1] the per-replica hash key prefix. Returns field, sum, field, sum, ...
    private const string SumHashes = """
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
        """;

    private static readonly LuaScript IncrWindow = LuaScript.Prepare("""
        local v = redis.call('INCRBYFLOAT', @key, @amount)
        if redis.call('PTTL', @key) < 0 then redis.call('PEXPIRE', @key, @ttl) end
        return v
        """);

    private readonly RedisConnection _redis;
    private readonly RedisStateStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _syncLock = new(1, 1);

    // This replica's own cumulative totals, and which changed since the last successful push.
    private readonly Dictionary<string, double> _ownService = new(StringComparer.Ordinal);
    private readonly HashSet<string> _dirtyService = new(StringComparer.Ordinal);

    // Cluster snapshots from the last successful sync, and our own totals at that moment.
    private Dictionary<string, double> _clusterService = new(StringComparer.Ordinal);
    private Dictionary<string, double> _ownServiceAtSnapshot = new(StringComparer.Ordinal);

    // Local fallbacks while Redis is away.
    private readonly Dictionary<string, LocalWindow> _windows = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Worker, DateTimeOffset Expires)> _sessions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Worker, DateTimeOffset Expires)> _pendingSessions = new(StringComparer.Ordinal);
    private volatile bool _fullResync = true;
    private volatile bool _shared;

    /// <summary>Creates the store over a connection (the store does not own it unless <paramref name="ownsClient"/>).</summary>
    public RedisStateStore(RedisConnection redis, RedisStateStoreOptions? options = null, TimeProvider? time = null, bool ownsClient = false)
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
    public async ValueTask<double> IncrementWindowAsync(string key, double amount, TimeSpan expiry, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var now = _time.GetUtcNow();
        if (_redis.IsConnected)
        {
            try
            {
                var reply = await _redis.RunAsync("EVALSHA", db => db.ScriptEvaluateAsync(IncrWindow,
                    new { key = (RedisKey)Key("win:", key), amount, ttl = MsValue(expiry) })).ConfigureAwait(false);
                var total = (double)reply;
                lock (_lock)
                {
                    var w = LocalWindowFor(key, expiry, now);
                    w.LastRemote = total; // cluster value (ours included), without increments still to flush
                    return total + w.Unflushed;
                }
            }
            catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
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
                var reply = await _redis.RunAsync("GET", db => db.StringGetAsync(Key("sess:", sessionId))).ConfigureAwait(false);
                if (!reply.IsNull)
                {
                    return reply.ToString();
                }
            }
            catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
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
                await _redis.RunAsync("SET", db => db.StringSetAsync(Key("sess:", sessionId), worker, Positive(ttl))).ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
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
        catch (Exception ex) when (RedisConnection.IsUnavailable(ex))
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
        Dictionary<string, double> ownSnapshot;
        List<HashEntry> service = [];
        List<(string Key, LocalWindow W, double Amount)> windowFlush = [];
        List<KeyValuePair<string, (string Worker, DateTimeOffset Expires)>> sessionFlush;
        lock (_lock)
        {
            ownSnapshot = new Dictionary<string, double>(_ownService, StringComparer.Ordinal);
            foreach (var path in full ? (IEnumerable<string>)_ownService.Keys : _dirtyService)
            {
                service.Add(new HashEntry(path, _ownService[path])); // absolute values: re-sending is idempotent
            }

            _dirtyService.Clear();
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
            // One batch (one round trip): membership, own service, windows and sessions made while Redis was away.
            var windowTotals = await _redis.RunAsync("PIPELINE", async db =>
            {
                var batch = db.CreateBatch();
                var pending = new List<Task> { batch.SetAddAsync(_options.Prefix + "replicas", _options.ReplicaId) };
                if (service.Count > 0)
                {
                    pending.Add(batch.HashSetAsync(Key("svc:", _options.ReplicaId), [.. service]));
                }

                var totals = new Task<double>[windowFlush.Count];
                for (var i = 0; i < windowFlush.Count; i++)
                {
                    var (key, w, amount) = windowFlush[i];
                    totals[i] = batch.StringIncrementAsync(Key("win:", key), amount);
                    pending.Add(totals[i]);
                    // A restarted Redis lost the key's TTL too.
                    pending.Add(batch.KeyExpireAsync(Key("win:", key), Positive(w.Expires - now), ExpireWhen.HasNoExpiry));
                }

                foreach (var (id, s) in sessionFlush)
                {
                    var left = s.Expires - now;
                    if (left > TimeSpan.Zero)
                    {
                        pending.Add(batch.StringSetAsync(Key("sess:", id), s.Worker, Positive(left)));
                    }
                }

                batch.Execute();
                await Task.WhenAll(pending).ConfigureAwait(false);
                return Array.ConvertAll(totals, t => t.Result);
            }).ConfigureAwait(false);

            lock (_lock)
            {
                for (var i = 0; i < windowFlush.Count; i++)
                {
                    var (key, w, amount) = windowFlush[i];
                    w.Unflushed -= amount;
                    w.LastRemote = windowTotals[i];
                    if (w.Expires <= now && w.Unflushed == 0)
                    {
                        _windows.Remove(key);
                    }
                }
            }

            var svcReply = await _redis.RunAsync("EVALSHA", db => db.ScriptEvaluateAsync(SumHashes,
                [(RedisKey)(_options.Prefix + "replicas")], [(RedisValue)(_options.Prefix + "svc:")])).ConfigureAwait(false);
            var cluster = new Dictionary<string, double>(StringComparer.Ordinal);
            var items = (RedisResult[]?)svcReply ?? [];
            for (var i = 0; i + 1 < items.Length; i += 2)
            {
                cluster[(string)items[i]!] = double.Parse((string)items[i + 1]!, CultureInfo.InvariantCulture);
            }

            lock (_lock)
            {
                _clusterService = cluster;
                _ownServiceAtSnapshot = ownSnapshot;
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

    private static TimeSpan Positive(TimeSpan t) => t > TimeSpan.FromMilliseconds(1) ? t : TimeSpan.FromMilliseconds(1);

    private static long MsValue(TimeSpan t) => Math.Max(1, (long)Math.Ceiling(t.TotalMilliseconds));

    private sealed class LocalWindow
    {
        public DateTimeOffset Expires { get; set; }

        /// <summary>Increments made locally and not yet in Redis.</summary>
        public double Unflushed { get; set; }

        /// <summary>Cluster value (without our unflushed part) last seen.</summary>
        public double LastRemote { get; set; }
    }
}
