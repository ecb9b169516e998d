namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Session → last worker, remembered for a TTL and bounded in count (least recently seen forgotten first).
/// Agent sessions return after a tool call (~9 s median) or a human turn (~210 s) with nearly the whole context
/// reused (docs/policies/kv-aware.md), so the worker that served the last turn is the likeliest holder of its KV.
/// Not thread-safe: the owning policy serialises calls. One allocation per new session, none per hit.
/// </summary>
public sealed class SessionAffinityTable
{
    private readonly TimeProvider _time;
    private readonly long _ttlTicks;
    private readonly int _max;
    private readonly Dictionary<string, LinkedListNode<Binding>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<Binding> _lru = new(); // first = most recent

    /// <summary>Creates a table.</summary>
    public SessionAffinityTable(TimeProvider time, TimeSpan ttl, int maxSessions)
    {
        _time = time;
        _ttlTicks = ttl.Ticks;
        _max = maxSessions;
    }

    /// <summary>Sessions remembered now.</summary>
    public int Count => _map.Count;

    /// <summary>The worker (id and index) a live session is bound to.</summary>
    public bool TryGet(string sessionId, out string workerId, out int workerIndex)
    {
        long now = _time.GetUtcNow().UtcTicks;
        if (_map.TryGetValue(sessionId, out var node))
        {
            if (now - node.Value.SeenTicks <= _ttlTicks)
            {
                workerId = node.Value.WorkerId;
                workerIndex = node.Value.WorkerIndex;
                return true;
            }

            _map.Remove(sessionId);
            _lru.Remove(node);
        }

        workerId = string.Empty;
        workerIndex = -1;
        return false;
    }

    /// <summary>Binds (or rebinds) a session to a worker and refreshes its TTL.</summary>
    public void Bind(string sessionId, string workerId, int workerIndex)
    {
        if (_max == 0)
        {
            return;
        }

        long now = _time.GetUtcNow().UtcTicks;
        if (_map.TryGetValue(sessionId, out var node))
        {
            node.Value = new Binding(sessionId, workerId, workerIndex, now);
            _lru.Remove(node);
            _lru.AddFirst(node);
        }
        else
        {
            _map[sessionId] = _lru.AddFirst(new Binding(sessionId, workerId, workerIndex, now));
        }

        // Expired sessions and the overflow leave from the LRU end.
        while (_lru.Last is { } last && (_map.Count > _max || now - last.Value.SeenTicks > _ttlTicks))
        {
            _map.Remove(last.Value.SessionId);
            _lru.RemoveLast();
        }
    }

    /// <summary>Forgets a session (it ended).</summary>
    public bool Forget(string sessionId)
    {
        if (_map.Remove(sessionId, out var node))
        {
            _lru.Remove(node);
            return true;
        }

        return false;
    }

    private readonly record struct Binding(string SessionId, string WorkerId, int WorkerIndex, long SeenTicks);
}
