using Worker.Contract;

namespace Worker.Engine;

/// <summary>
/// Retention pins: a pin holds cached blocks out of the LRU until its TTL passes or it is released, within the
/// pinned-share cap; under allocation pressure pins are dropped lowest (value, priority, expiry, age) first. See the
/// class summary in KvBlockManager.cs for how a lapsed pin's blocks rejoin the LRU.
/// </summary>
public sealed partial class KvBlockManager
{
    private readonly Dictionary<long, PinEntry> _pins = [];
    private readonly Dictionary<string, long> _pinBySession = new(StringComparer.Ordinal);
    private long _nextPinId;
    private DateTimeOffset _nextExpiry = DateTimeOffset.MaxValue;

    /// <summary>Live pins.</summary>
    public int ActivePins => _pins.Count;

    /// <summary>Pins dropped under pressure or to respect the pinned-share cap.</summary>
    public long PinsDroppedTotal { get; private set; }

    /// <summary>Pins that reached their TTL (as opposed to released or dropped).</summary>
    public long PinsExpiredTotal { get; private set; }

    /// <summary>
    /// Pins the cached blocks of the longest cached prefix of <paramref name="hashes"/> until <paramref name="ttl"/> from now.
    /// A pin keyed by <paramref name="session"/> replaces that session's previous pin. If the pinned-share cap would be
    /// exceeded, pins of lower (value, priority) are dropped first; what still does not fit is cut from the tail.
    /// </summary>
    public RetainResult Pin(string? session, ReadOnlySpan<ulong> hashes, TimeSpan ttl, int priority, double value)
    {
        ExpirePins();
        if (ttl <= TimeSpan.Zero)
        {
            return new RetainResult(0, 0);
        }

        if (session is not null && _pinBySession.TryGetValue(session, out long old))
        {
            Unpin(_pins[old]);
        }

        if (session is not null)
        {
            Host?.Release(session); // one retention intent per session: an HBM pin replaces a host pin
        }

        var blocks = new List<int>();
        for (int i = 0; i < hashes.Length && _cache.TryGetValue(hashes[i], out int b); i++)
        {
            blocks.Add(b);
        }

        int dropped = 0;
        while (_pinnedBlocks + NewlyPinned(blocks, blocks.Count) > MaxPinnedBlocks)
        {
            var victim = LowestPin();
            if (victim is null || Compare(victim.Value, victim.Priority, value, priority) >= 0)
            {
                break;
            }

            Drop(victim);
            dropped++;
        }

        int keep = blocks.Count;
        while (keep > 0 && _pinnedBlocks + NewlyPinned(blocks, keep) > MaxPinnedBlocks)
        {
            keep--;
        }

        if (keep < blocks.Count)
        {
            blocks.RemoveRange(keep, blocks.Count - keep);
        }

        if (blocks.Count == 0)
        {
            return new RetainResult(0, dropped);
        }

        var pin = new PinEntry(++_nextPinId, session, blocks, _time.GetUtcNow() + ttl, priority, value);
        foreach (int b in blocks)
        {
            if (_pinCount[b]++ == 0)
            {
                _pinnedBlocks++;
                if (_refCount[b] == 0)
                {
                    _pinnedIdleBlocks++;
                }

                if (_inLru[b])
                {
                    LruRemove(b);
                }
            }
        }

        _pins.Add(pin.Id, pin);
        if (session is not null)
        {
            _pinBySession[session] = pin.Id;
        }

        if (pin.ExpiresAt < _nextExpiry)
        {
            _nextExpiry = pin.ExpiresAt;
        }

        return new RetainResult(blocks.Count, dropped);
    }

    /// <summary>Releases a session's pins in both tiers; returns the number of blocks they held (0 if none).</summary>
    public int ReleaseSession(string session)
    {
        ExpirePins();
        int host = Host?.Release(session) ?? 0;
        if (!_pinBySession.TryGetValue(session, out long id))
        {
            return host;
        }

        var pin = _pins[id];
        int n = pin.Blocks.Count;
        Unpin(pin);
        return n + host;
    }

    /// <summary>Removes the given blocks from every pin that holds them; returns the number of (pin, block) holds released.</summary>
    public int ReleaseHashes(ReadOnlySpan<ulong> hashes)
    {
        ExpirePins();
        int released = 0;
        List<PinEntry>? emptied = null;
        foreach (ulong h in hashes)
        {
            if (!_cache.TryGetValue(h, out int block) || _pinCount[block] == 0)
            {
                continue;
            }

            foreach (var pin in _pins.Values)
            {
                if (pin.Blocks.Remove(block))
                {
                    released++;
                    UnpinBlock(block);
                    if (pin.Blocks.Count == 0)
                    {
                        (emptied ??= []).Add(pin);
                    }
                }
            }
        }

        if (emptied is not null)
        {
            foreach (var pin in emptied)
            {
                RemovePin(pin);
            }
        }

        return released;
    }

    /// <summary>Removes pins whose TTL has passed (their blocks become evictable). Cheap when none is due.</summary>
    public void ExpirePins()
    {
        Host?.ExpirePins();
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
            expired.Sort(static (a, b) => a.Id.CompareTo(b.Id));
            foreach (var pin in expired)
            {
                Unpin(pin, atLastUse: true, pin.ExpiresAt.UtcTicks); // protected for its TTL, not beyond: back to the LRU as old as its last use
            }

            PinsExpiredTotal += expired.Count;
        }

        _nextExpiry = next;
    }

    private int NewlyPinned(List<int> blocks, int count)
    {
        int n = 0;
        for (int i = 0; i < count; i++)
        {
            if (_pinCount[blocks[i]] == 0)
            {
                n++;
            }
        }

        return n;
    }

    /// <summary>Drops pins (lowest first) until <paramref name="count"/> blocks are available; false (nothing dropped) if even all pins would not do.</summary>
    private bool DropPinsToFree(int count)
    {
        if (_pins.Count == 0)
        {
            return false;
        }

        if (AvailableBlocks + _pinnedIdleBlocks < count)
        {
            return false;
        }

        while (AvailableBlocks < count && LowestPin() is { } victim)
        {
            Drop(victim);
        }

        return AvailableBlocks >= count;
    }

    private PinEntry? LowestPin()
    {
        PinEntry? lowest = null;
        foreach (var pin in _pins.Values)
        {
            if (lowest is null || Compare(pin, lowest) < 0)
            {
                lowest = pin;
            }
        }

        return lowest;
    }

    private static int Compare(double valueA, int priorityA, double valueB, int priorityB)
    {
        int c = valueA.CompareTo(valueB);
        return c != 0 ? c : priorityA.CompareTo(priorityB);
    }

    private static int Compare(PinEntry a, PinEntry b)
    {
        int c = Compare(a.Value, a.Priority, b.Value, b.Priority);
        if (c == 0)
        {
            c = a.ExpiresAt.CompareTo(b.ExpiresAt);
        }

        return c != 0 ? c : a.Id.CompareTo(b.Id);
    }

    private void Drop(PinEntry pin)
    {
        var hashes = new ulong[pin.Blocks.Count];
        for (int i = 0; i < hashes.Length; i++)
        {
            hashes[i] = _hash[pin.Blocks[i]];
        }

        Unpin(pin, atLastUse: true, _time.GetUtcNow().UtcTicks);
        PinsDroppedTotal++;
        _events.Append(KvEventType.PinDropped, hashes);
    }

    /// <summary>
    /// Removes a pin. Its blocks that become evictable join the LRU as just used, or, with <paramref name="atLastUse"/> (a
    /// pin that expired or was dropped at <paramref name="endedAt"/> ticks), where their last use places them
    /// (<see cref="LruInsertAtLastUse"/>).
    /// </summary>
    private void Unpin(PinEntry pin, bool atLastUse = false, long endedAt = 0)
    {
        int anchor = LruUnset;
        for (int i = pin.Blocks.Count - 1; i >= 0; i--)
        {
            int block = pin.Blocks[i];
            if (atLastUse && _pinCount[block] == 1 && _refCount[block] == 0 && _hasHash[block])
            {
                _pinCount[block] = 0;
                _pinnedBlocks--;
                _pinnedIdleBlocks--;
                anchor = LruInsertAtLastUse(block, anchor, endedAt);
                continue;
            }

            UnpinBlock(block);
        }

        RemovePin(pin);
    }

    private void RemovePin(PinEntry pin)
    {
        _pins.Remove(pin.Id);
        if (pin.Session is not null && _pinBySession.TryGetValue(pin.Session, out long id) && id == pin.Id)
        {
            _pinBySession.Remove(pin.Session);
        }
    }

    private void UnpinBlock(int block)
    {
        if (--_pinCount[block] == 0)
        {
            _pinnedBlocks--;
            if (_refCount[block] == 0)
            {
                _pinnedIdleBlocks--;
            }

            ReleaseIfIdle(block);
        }
    }

    private sealed record PinEntry(long Id, string? Session, List<int> Blocks, DateTimeOffset ExpiresAt, int Priority, double Value);
}
