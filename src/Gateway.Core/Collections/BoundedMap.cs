namespace Gateway.Core.Collections;

/// <summary>
/// A dictionary with a memory bound: entries carry a weight (1 unless a weight function is given) and, while the total
/// weight exceeds the capacity, the least recently <em>written</em> entry is dropped and handed to the eviction
/// callback. For per-session state that has no natural end (a client that simply stops sending), so a long-running
/// gateway cannot grow without limit. Writes are O(1) amortised (a queue of write stamps with lazy deletion, compacted
/// when stale stamps outnumber live entries). With a <c>maxIdle</c> age, an entry not written for longer than that is
/// dropped too (at the next write, also handed to the eviction callback), so state that stops being used leaves even
/// while the count is under the capacity. Not thread-safe: the owner serialises calls.
/// </summary>
public sealed class BoundedMap<TKey, TValue>
    where TKey : notnull
{
    private readonly Dictionary<TKey, (TValue Value, long Stamp, long Weight)> _map;
    private readonly Queue<(TKey Key, long Stamp, long WrittenAt)> _order = new();
    private readonly Func<TValue, long>? _weight;
    private readonly Action<TKey, TValue>? _evicted;
    private readonly TimeProvider? _time;
    private readonly long _maxIdleTicks;
    private long _stamp;

    /// <summary>
    /// Creates the map. <paramref name="capacity"/>: the largest total weight kept; <paramref name="weight"/>: an entry's
    /// weight (≥ 1; default 1, i.e. the capacity is an entry count); <paramref name="evicted"/>: told about every entry
    /// dropped for room or age (not about removals or overwrites); <paramref name="maxIdle"/> (with <paramref name="time"/>):
    /// the longest an entry is kept after its last write (null: no age bound).
    /// </summary>
    public BoundedMap(long capacity, IEqualityComparer<TKey>? comparer = null, Func<TValue, long>? weight = null, Action<TKey, TValue>? evicted = null,
        TimeProvider? time = null, TimeSpan? maxIdle = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
        _map = new Dictionary<TKey, (TValue, long, long)>(comparer);
        _weight = weight;
        _evicted = evicted;
        if (maxIdle is { } idle)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(idle, TimeSpan.Zero, nameof(maxIdle));
            _time = time ?? throw new ArgumentNullException(nameof(time), "an age bound needs a clock");
            _maxIdleTicks = (long)Math.Min(long.MaxValue / 2.0, idle.TotalSeconds * _time.TimestampFrequency);
            MaxIdle = idle;
        }
    }

    /// <summary>The longest an entry is kept after its last write (null: no age bound).</summary>
    public TimeSpan? MaxIdle { get; }

    /// <summary>The largest total weight kept.</summary>
    public long Capacity { get; }

    /// <summary>Entries held.</summary>
    public int Count => _map.Count;

    /// <summary>Total weight held.</summary>
    public long Weight { get; private set; }

    /// <summary>Entries dropped for room or age so far.</summary>
    public long Evictions { get; private set; }

    /// <summary>The value of <paramref name="key"/>, if held.</summary>
    public bool TryGetValue(TKey key, out TValue value)
    {
        if (_map.TryGetValue(key, out var e))
        {
            value = e.Value;
            return true;
        }

        value = default!;
        return false;
    }

    /// <summary>True if <paramref name="key"/> is held.</summary>
    public bool ContainsKey(TKey key) => _map.ContainsKey(key);

    /// <summary>
    /// Writes <paramref name="key"/> (it becomes the most recently written), then evicts the oldest entries while over
    /// capacity and those not written for longer than <see cref="MaxIdle"/>.
    /// </summary>
    public void Set(TKey key, TValue value)
    {
        long w = _weight is null ? 1 : Math.Max(1, _weight(value));
        if (_map.TryGetValue(key, out var old))
        {
            Weight -= old.Weight;
        }

        long stamp = ++_stamp;
        _map[key] = (value, stamp, w);
        Weight += w;
        long now = _time?.GetTimestamp() ?? 0;
        _order.Enqueue((key, stamp, now));
        while (_order.TryPeek(out var oldest) && (Weight > Capacity || (_time is not null && now - oldest.WrittenAt > _maxIdleTicks)))
        {
            _order.Dequeue();
            if (_map.TryGetValue(oldest.Key, out var e) && e.Stamp == oldest.Stamp)
            {
                _map.Remove(oldest.Key);
                Weight -= e.Weight;
                Evictions++;
                _evicted?.Invoke(oldest.Key, e.Value);
            }
        }

        if (_order.Count > 2 * _map.Count + 16)
        {
            Compact();
        }
    }

    /// <summary>Removes <paramref name="key"/>; false if it was not held.</summary>
    public bool Remove(TKey key, out TValue value)
    {
        if (_map.Remove(key, out var e))
        {
            Weight -= e.Weight;
            value = e.Value;
            return true;
        }

        value = default!;
        return false;
    }

    /// <summary>Removes <paramref name="key"/>; false if it was not held.</summary>
    public bool Remove(TKey key) => Remove(key, out _);

    // Drops stamps of entries since removed or rewritten, keeping write order.
    private void Compact()
    {
        int n = _order.Count;
        for (int i = 0; i < n; i++)
        {
            var s = _order.Dequeue();
            if (_map.TryGetValue(s.Key, out var e) && e.Stamp == s.Stamp)
            {
                _order.Enqueue(s);
            }
        }
    }
}
