namespace Gateway.State;

/// <summary>The embedded default: everything in this process. Thread-safe.</summary>
public sealed class InMemoryStateStore : IStateStore
{
    private readonly object _lock = new();
    private readonly TimeProvider _time;
    private readonly Dictionary<string, double> _service = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (double Value, DateTimeOffset Expires)> _windows = new(StringComparer.Ordinal);
    private readonly Dictionary<string, (string Worker, DateTimeOffset Expires)> _sessions = new(StringComparer.Ordinal);
    private int _writes;

    /// <summary>Creates the store.</summary>
    public InMemoryStateStore(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <inheritdoc />
    public string Name => "memory";

    /// <inheritdoc />
    public bool IsShared => false;

    /// <inheritdoc />
    public void AddService(string tenantPath, double cost)
    {
        lock (_lock)
        {
            _service[tenantPath] = _service.GetValueOrDefault(tenantPath) + cost;
        }
    }

    /// <inheritdoc />
    public IReadOnlyDictionary<string, double> GetService()
    {
        lock (_lock)
        {
            return new Dictionary<string, double>(_service, StringComparer.Ordinal);
        }
    }

    /// <inheritdoc />
    public ValueTask<double> IncrementWindowAsync(string key, double amount, TimeSpan expiry, CancellationToken ct = default)
    {
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            if (!_windows.TryGetValue(key, out var w) || w.Expires <= now)
            {
                w = (0, now + expiry);
            }

            w.Value += amount;
            _windows[key] = w;
            SweepIfDue(now);
            return ValueTask.FromResult(w.Value);
        }
    }

    /// <inheritdoc />
    public ValueTask<string?> GetSessionAsync(string sessionId, CancellationToken ct = default)
    {
        lock (_lock)
        {
            return ValueTask.FromResult(_sessions.TryGetValue(sessionId, out var s) && s.Expires > _time.GetUtcNow() ? s.Worker : null);
        }
    }

    /// <inheritdoc />
    public ValueTask SetSessionAsync(string sessionId, string worker, TimeSpan ttl, CancellationToken ct = default)
    {
        lock (_lock)
        {
            var now = _time.GetUtcNow();
            _sessions[sessionId] = (worker, now + ttl);
            SweepIfDue(now);
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask SyncAsync(CancellationToken ct = default) => ValueTask.CompletedTask;

    /// <inheritdoc />
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private void SweepIfDue(DateTimeOffset now)
    {
        // Amortised expiry: every 1024 writes drop expired windows and sessions, so memory stays bounded.
        if (++_writes % 1024 != 0)
        {
            return;
        }

        foreach (var k in _windows.Where(kv => kv.Value.Expires <= now).Select(kv => kv.Key).ToList())
        {
            _windows.Remove(k);
        }

        foreach (var k in _sessions.Where(kv => kv.Value.Expires <= now).Select(kv => kv.Key).ToList())
        {
            _sessions.Remove(k);
        }
    }
}
