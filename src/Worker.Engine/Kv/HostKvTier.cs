using Worker.Contract;

namespace Worker.Engine;

/// <summary>
/// The host-memory (CPU DRAM) tier behind the HBM block pool, after SGLang HiCache's host pool and vLLM's CPU offloading
/// connector: a second, larger store of KV blocks keyed by their chained hash.
/// <list type="bullet">
/// <item>Write-back: a cached HBM block the LRU evicts is copied here instead of being discarded
/// (<see cref="Store"/>); a block already here is only refreshed.</item>
/// <item>The tier is inclusive: a block reloaded into HBM keeps its host copy, so evicting it again costs no copy.</item>
/// <item>Eviction is LRU over unpinned entries. A host pin (a retain hint naming the <c>host</c> tier) holds entries out
/// of the LRU until its TTL passes or it is released; host pins never hold more than <c>maxPinnedFraction</c> of the
/// tier and a new pin replaces the session's previous one.</item>
/// <item>Every entry that enters or leaves is reported on the engine's KV event stream with medium <c>cpu</c>.</item>
/// </list>
/// The data itself is modelled (hashes only); a real backend would keep the bytes in pinned host memory.
/// Not thread-safe (the engine serialises calls).
/// </summary>
public sealed class HostKvTier
{
    private readonly Dictionary<ulong, Entry> _entries = [];
    private readonly LinkedList<Entry> _lru = new();
    private readonly Dictionary<string, HostPin> _pins = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly KvEventLog _events;
    private readonly List<ulong> _scratch = [];
    private int _pinnedEntries;
    private DateTimeOffset _nextExpiry = DateTimeOffset.MaxValue;

    public HostKvTier(int capacityBlocks, double maxPinnedFraction, TimeProvider time, KvEventLog events)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBlocks, 0);
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(events);
        CapacityBlocks = capacityBlocks;
        MaxPinnedBlocks = (int)Math.Floor(capacityBlocks * Math.Clamp(maxPinnedFraction, 0, 1));
        _time = time;
        _events = events;
    }

    /// <summary>Blocks the tier can hold (0 = no host tier).</summary>
    public int CapacityBlocks { get; }

    /// <summary>Most entries host pins may hold.</summary>
    public int MaxPinnedBlocks { get; }

    /// <summary>Entries held now.</summary>
    public int CachedBlocks => _entries.Count;

    /// <summary>Entries held by a host pin.</summary>
    public int PinnedBlocks => _pinnedEntries;

    /// <summary>Live host pins.</summary>
    public int ActivePins => _pins.Count;

    /// <summary>Blocks written here from HBM (write-back on eviction or a host retain).</summary>
    public long StoresTotal { get; private set; }

    /// <summary>Entries the host LRU evicted (gone from every tier unless still in HBM).</summary>
    public long EvictionsTotal { get; private set; }

    /// <summary>True if the block is held here.</summary>
    public bool Contains(ulong hash) => _entries.ContainsKey(hash);

    /// <summary>Called for each entry the LRU evicts (a backend that holds the bytes frees them).</summary>
    public Action<ulong>? Evicted { get; set; }

    /// <summary>Marks an entry recently used (a reload or a prefetch read it).</summary>
    public void Touch(ulong hash)
    {
        if (_entries.TryGetValue(hash, out var e) && e.Node.List is not null)
        {
            _lru.Remove(e.Node);
            _lru.AddLast(e.Node);
        }
    }

    /// <summary>
    /// Writes blocks here (chain order). A block already held is refreshed; a new one takes a free slot or the LRU
    /// head's. Stops when the tier is full of pinned entries. Returns how many of <paramref name="hashes"/> are held after
    /// the call; emits one stored event (medium cpu) for the new ones and one removed event for the ones evicted.
    /// </summary>
    public int Store(ReadOnlySpan<ulong> hashes)
    {
        if (CapacityBlocks == 0 || hashes.IsEmpty)
        {
            return 0;
        }

        ExpirePins();
        _scratch.Clear();
        List<ulong>? evicted = null;
        int held = 0;
        foreach (ulong h in hashes)
        {
            if (_entries.ContainsKey(h))
            {
                Touch(h);
                held++;
                continue;
            }

            if (_entries.Count >= CapacityBlocks)
            {
                var victim = _lru.First;
                if (victim is null)
                {
                    break; // every entry pinned
                }

                _lru.RemoveFirst();
                _entries.Remove(victim.Value.Hash);
                (evicted ??= []).Add(victim.Value.Hash);
                EvictionsTotal++;
                Evicted?.Invoke(victim.Value.Hash);
            }

            var entry = new Entry(h);
            entry.Node = _lru.AddLast(entry);
            _entries.Add(h, entry);
            _scratch.Add(h);
            StoresTotal++;
            held++;
        }

        if (evicted is not null)
        {
            _events.Append(KvEventType.Removed, [.. evicted], null, KvMedium.Cpu);
        }

        if (_scratch.Count > 0)
        {
            _events.Append(KvEventType.Stored, [.. _scratch], null, KvMedium.Cpu);
        }

        return held;
    }

    /// <summary>
    /// Pins the held entries among <paramref name="hashes"/> (the leading run that is held) for <paramref name="ttl"/>;
    /// replaces the session's previous host pin. Lower-value pins are dropped for room under the cap; what still does not
    /// fit is cut from the tail. Returns the entries pinned.
    /// </summary>
    public int Pin(string session, ReadOnlySpan<ulong> hashes, TimeSpan ttl, double value)
    {
        ArgumentNullException.ThrowIfNull(session);
        ExpirePins();
        Release(session);
        if (ttl <= TimeSpan.Zero || CapacityBlocks == 0)
        {
            return 0;
        }

        var list = new List<Entry>();
        foreach (ulong h in hashes)
        {
            if (!_entries.TryGetValue(h, out var e))
            {
                break;
            }

            list.Add(e);
        }

        while (_pinnedEntries + NewlyPinned(list, list.Count) > MaxPinnedBlocks && LowestPin() is { } victim && victim.Value < value)
        {
            Unpin(victim);
            PinsDroppedTotal++;
        }

        int keep = list.Count;
        while (keep > 0 && _pinnedEntries + NewlyPinned(list, keep) > MaxPinnedBlocks)
        {
            keep--;
        }

        list.RemoveRange(keep, list.Count - keep);
        if (list.Count == 0)
        {
            return 0;
        }

        var pin = new HostPin(session, list, _time.GetUtcNow() + ttl, value);
        foreach (var e in list)
        {
            if (e.PinCount++ == 0)
            {
                _pinnedEntries++;
                _lru.Remove(e.Node);
            }
        }

        _pins[session] = pin;
        if (pin.ExpiresAt < _nextExpiry)
        {
            _nextExpiry = pin.ExpiresAt;
        }

        return list.Count;
    }

    /// <summary>Host pins dropped for a higher-value pin under the cap.</summary>
    public long PinsDroppedTotal { get; private set; }

    /// <summary>Releases a session's host pin; returns the entries it held (0 if none).</summary>
    public int Release(string session)
    {
        if (!_pins.TryGetValue(session, out var pin))
        {
            return 0;
        }

        Unpin(pin);
        return pin.Entries.Count;
    }

    /// <summary>Drops host pins whose TTL passed (their entries rejoin the LRU). Cheap when none is due.</summary>
    public void ExpirePins()
    {
        if (_pins.Count == 0)
        {
            return;
        }

        var now = _time.GetUtcNow();
        if (now < _nextExpiry)
        {
            return;
        }

        var expired = PinExpiry.Due(_pins.Values, static p => p.ExpiresAt, now, out var next);

        if (expired is not null)
        {
            foreach (var pin in expired)
            {
                Unpin(pin);
            }
        }

        _nextExpiry = next;
    }

    /// <summary>Forgets everything (the engine's cleared event covers both tiers).</summary>
    public void Clear()
    {
        _pins.Clear();
        _entries.Clear();
        _lru.Clear();
        _pinnedEntries = 0;
        _nextExpiry = DateTimeOffset.MaxValue;
    }

    private void Unpin(HostPin pin)
    {
        _pins.Remove(pin.Session);
        foreach (var e in pin.Entries)
        {
            if (--e.PinCount == 0)
            {
                _pinnedEntries--;
                if (_entries.ContainsKey(e.Hash))
                {
                    _lru.AddLast(e.Node);
                }
            }
        }
    }

    private HostPin? LowestPin()
    {
        HostPin? lowest = null;
        foreach (var p in _pins.Values)
        {
            if (lowest is null || p.Value < lowest.Value || (p.Value == lowest.Value && p.ExpiresAt < lowest.ExpiresAt))
            {
                lowest = p;
            }
        }

        return lowest;
    }

    private static int NewlyPinned(List<Entry> list, int count)
    {
        int n = 0;
        for (int i = 0; i < count; i++)
        {
            if (list[i].PinCount == 0)
            {
                n++;
            }
        }

        return n;
    }

    private sealed class Entry(ulong hash)
    {
        public ulong Hash { get; } = hash;
        public LinkedListNode<Entry> Node { get; set; } = null!;
        public int PinCount { get; set; }
    }

    private sealed record HostPin(string Session, List<Entry> Entries, DateTimeOffset ExpiresAt, double Value);
}
