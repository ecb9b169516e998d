namespace Gateway.Core.Collections;

/// <summary>
/// A dictionary with a memory bound: entries carry a weight (1 unless a weight function is given) and, while the total
/// weight exceeds the capacity, the least recently <em>written</em> entry is dropped and handed to the eviction
/// callback. For per-session state that has no natural end (a client that simply stops sending), so a long-running
/// gateway cannot grow without limit. Writes are O(1) amortised (a queue of write stamps with lazy deletion, compacted
/// when stale stamps outnumber live entries). With a <c>maxIdle</c> age, an entry not written for longer than that is
/// dropped too (at the next write, also handed to the eviction callback), so state that stops being used leaves even
/// while the count is under the capacity. With a <c>briefIdle</c> age as well, an entry written as brief
/// (<see cref="Set(TKey, TValue, bool)"/>) is kept only that long after its write: state of something seen once (a one-shot
/// request's session) leaves sooner than state of something that came back; a later plain write makes it a full-age entry.
/// After a burst the storage shrinks with the count: once the entries fall below a quarter of their peak, the dictionary
/// and the write-order queues give back their spare capacity (amortised O(1): a trim follows at least three times as many
/// removals as it copies entries). Not thread-safe: the owner serialises calls.
/// </summary>
public sealed class BoundedMap<TKey, TValue>
    where TKey : notnull
{
    private readonly Dictionary<TKey, (TValue Value, long Stamp, long Weight)> _map;
    private readonly Queue<(TKey Key, long Stamp, long WrittenAt)> _order = new();
    private readonly Queue<(TKey Key, long Stamp, long WrittenAt)> _brief = new();
    private readonly Func<TValue, long>? _weight;
    private readonly Action<TKey, TValue>? _evicted;
    private readonly TimeProvider? _time;
    private readonly long _maxIdleTicks;
    private readonly long _briefIdleTicks;
    private long _stamp;
    private PeakWatermark _peak;

    /// <summary>
    /// Creates the map. <paramref name="capacity"/>: the largest total weight kept; <paramref name="weight"/>: an entry's
    /// weight (≥ 1; default 1, i.e. the capacity is an entry count); <paramref name="evicted"/>: told about every entry
    /// dropped for room or age (not about removals or overwrites); <paramref name="maxIdle"/> (with <paramref name="time"/>):
    /// the longest an entry is kept after its last write (null: no age bound); <paramref name="briefIdle"/> (with
    /// <paramref name="time"/>, at most <paramref name="maxIdle"/>): the same for entries written as brief (null: brief
    /// writes are plain writes).
    /// </summary>
    public BoundedMap(long capacity, IEqualityComparer<TKey>? comparer = null, Func<TValue, long>? weight = null, Action<TKey, TValue>? evicted = null,
        TimeProvider? time = null, TimeSpan? maxIdle = null, TimeSpan? briefIdle = null)
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

        if (briefIdle is { } brief)
        {
            ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(brief, TimeSpan.Zero, nameof(briefIdle));
            if (maxIdle is { } longest)
            {
                ArgumentOutOfRangeException.ThrowIfGreaterThan(brief, longest, nameof(briefIdle));
            }

            _time = time ?? throw new ArgumentNullException(nameof(time), "an age bound needs a clock");
            _briefIdleTicks = (long)Math.Min(long.MaxValue / 2.0, brief.TotalSeconds * _time.TimestampFrequency);
            BriefIdle = brief;
        }
    }

    /// <summary>The longest an entry written as brief is kept after that write (null: brief writes are plain writes).</summary>
    public TimeSpan? BriefIdle { get; }

    /// <summary>Slots the dictionary holds (entries and spare room; for tests of the shrink after a burst).</summary>
    public int StorageCapacity => _map.Capacity;

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
    public void Set(TKey key, TValue value) => Set(key, value, brief: false);

    /// <summary>
    /// Writes <paramref name="key"/> as <see cref="Set(TKey, TValue)"/> does; with <paramref name="brief"/> (and a
    /// <see cref="BriefIdle"/>) the entry is dropped <see cref="BriefIdle"/> after this write unless written again.
    /// </summary>
    public void Set(TKey key, TValue value, bool brief)
    {
        long w = _weight is null ? 1 : Math.Max(1, _weight(value));
        if (_map.TryGetValue(key, out var old))
        {
            Weight -= old.Weight;
        }

        long stamp = ++_stamp;
        _map[key] = (value, stamp, w);
        Weight += w;
        _peak.Observe(_map.Count);
        long now = _time?.GetTimestamp() ?? 0;
        (brief && BriefIdle is not null ? _brief : _order).Enqueue((key, stamp, now));
        while (NextVictim(now) is { } queue)
        {
            var oldest = queue.Dequeue();
            var e = _map[oldest.Key];
            _map.Remove(oldest.Key);
            Weight -= e.Weight;
            Evictions++;
            _evicted?.Invoke(oldest.Key, e.Value);
        }

        if (_order.Count + _brief.Count > 2 * _map.Count + 16)
        {
            Compact(_order);
            Compact(_brief);
        }

        TrimAfterPeak();
    }

    /// <summary>Removes <paramref name="key"/>; false if it was not held.</summary>
    public bool Remove(TKey key, out TValue value)
    {
        if (_map.Remove(key, out var e))
        {
            Weight -= e.Weight;
            value = e.Value;
            TrimAfterPeak();
            return true;
        }

        value = default!;
        return false;
    }

    /// <summary>Removes <paramref name="key"/>; false if it was not held.</summary>
    public bool Remove(TKey key) => Remove(key, out _);

    // The queue whose head is the next entry to drop (over capacity: the older head of the two; else one past its age),
    // after skipping stamps of entries since removed or rewritten; null when nothing is due.
    private Queue<(TKey Key, long Stamp, long WrittenAt)>? NextVictim(long now)
    {
        SkipStale(_order);
        SkipStale(_brief);
        bool hasPlain = _order.TryPeek(out var plain);
        bool hasBrief = _brief.TryPeek(out var brief);
        if (Weight > Capacity && (hasPlain || hasBrief))
        {
            return !hasBrief || (hasPlain && plain.Stamp < brief.Stamp) ? _order : _brief;
        }

        if (_time is null)
        {
            return null;
        }

        if (hasBrief && now - brief.WrittenAt > _briefIdleTicks)
        {
            return _brief;
        }

        return hasPlain && MaxIdle is not null && now - plain.WrittenAt > _maxIdleTicks ? _order : null;
    }

    private void SkipStale(Queue<(TKey Key, long Stamp, long WrittenAt)> queue)
    {
        while (queue.TryPeek(out var s) && !(_map.TryGetValue(s.Key, out var e) && e.Stamp == s.Stamp))
        {
            queue.Dequeue();
        }
    }

    // Drops stamps of entries since removed or rewritten, keeping write order.
    private void Compact(Queue<(TKey Key, long Stamp, long WrittenAt)> queue)
    {
        int n = queue.Count;
        for (int i = 0; i < n; i++)
        {
            var s = queue.Dequeue();
            if (_map.TryGetValue(s.Key, out var e) && e.Stamp == s.Stamp)
            {
                queue.Enqueue(s);
            }
        }
    }

    // After a burst: once the entries fall below a quarter of their peak, give the spare capacity back.
    private void TrimAfterPeak()
    {
        if (!_peak.TrimNow(_map.Count))
        {
            return;
        }

        _map.TrimExcess();
        Compact(_order);
        Compact(_brief);
        _order.TrimExcess();
        _brief.TrimExcess();
    }
}
