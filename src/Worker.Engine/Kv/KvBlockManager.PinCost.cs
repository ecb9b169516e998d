namespace Worker.Engine;

/// <summary>
/// What pins cost the other contexts and what they save, measured against the counterfactual without pins: a shadow
/// LRU of block hashes, as large as the pool, that sees every block the engine computes, hits and frees in the same
/// order but knows no pins (what the prefix cache would hold if no retain hint had been sent). At each request's first
/// admission (<see cref="ShadowAdmitted"/>) the engine compares its own hit with the shadow's: blocks the shadow has and the engine recomputes count as
/// <see cref="PinCostBlocksTotal"/> (pins pushed them out), blocks the engine hits and the shadow lacks as
/// <see cref="PinSavedBlocksTotal"/> (a pin kept them). Kept only on workers without a host tier (there the tier, not
/// pins, keeps idle contexts); measurement only, it changes no eviction decision. A lapsed pin's blocks rejoin the real
/// LRU where their last use places them (<see cref="LruInsertAtLastUse"/>), as they sit in the shadow.
/// </summary>
public sealed partial class KvBlockManager
{
    private readonly LinkedList<ulong> _shadow = new(); // head = least recently used
    private readonly Dictionary<ulong, LinkedListNode<ulong>> _shadowIndex = [];

    /// <summary>Blocks recomputed that plain LRU without pins would still have held (pins pushed them out).</summary>
    public long PinCostBlocksTotal { get; private set; }

    /// <summary>Blocks hit that plain LRU without pins would have evicted (a pin kept them).</summary>
    public long PinSavedBlocksTotal { get; private set; }

    private bool ShadowOn => Host is null;

    /// <summary>
    /// A request was admitted (once per request: admission retries and preemptions do not count again) with
    /// <paramref name="hits"/> leading blocks of <paramref name="hashes"/> cached (of at most <paramref name="limit"/>):
    /// compares with the shadow's prefix and touches what the shadow hit.
    /// </summary>
    public void ShadowAdmitted(ReadOnlySpan<ulong> hashes, int limit, int hits)
    {
        if (!ShadowOn)
        {
            return;
        }

        limit = Math.Min(limit, hashes.Length);
        int n = 0;
        while (n < limit && _shadowIndex.ContainsKey(hashes[n]))
        {
            n++;
        }

        if (n > hits)
        {
            PinCostBlocksTotal += n - hits;
        }
        else if (hits > n)
        {
            PinSavedBlocksTotal += hits - n;
        }

        for (int i = n - 1; i >= 0; i--)
        {
            ShadowTouch(hashes[i]);
        }
    }

    /// <summary>A block was computed or freed: the shadow holds its hash as most recently used.</summary>
    private void ShadowTouch(ulong hash)
    {
        if (!ShadowOn)
        {
            return;
        }

        if (_shadowIndex.TryGetValue(hash, out var node))
        {
            _shadow.Remove(node);
            _shadow.AddLast(node);
            return;
        }

        if (_shadow.Count >= TotalBlocks)
        {
            var lru = _shadow.First!;
            _shadow.RemoveFirst();
            _shadowIndex.Remove(lru.Value);
            lru.Value = hash; // reuse the node
            _shadow.AddLast(lru);
            _shadowIndex[hash] = lru;
            return;
        }

        _shadowIndex[hash] = _shadow.AddLast(hash);
    }

    private void ClearPinCost()
    {
        _shadow.Clear();
        _shadowIndex.Clear();
    }

    private const int LruUnset = -2;

    /// <summary>
    /// Puts an idle, unpinned cached block into the LRU at the place its last use (<c>_idleSince</c>) gives it, instead of
    /// at the most recently used end: after <paramref name="anchor"/> (the block inserted just before it, tail-first, so a
    /// context's tail is still evicted before its head), or, for the first block of a run (<see cref="LruUnset"/>), after
    /// the newest block idle no longer than it. It entered the LRU at <paramref name="enteredAt"/> ticks (its eviction age
    /// counts from then, not from its last use). Returns the block (the next anchor).
    /// </summary>
    private int LruInsertAtLastUse(int block, int anchor, long enteredAt)
    {
        if (anchor == LruUnset)
        {
            anchor = _lruTail;
            while (anchor != None && _idleSince[anchor] > _idleSince[block])
            {
                anchor = _prev[anchor];
            }
        }

        int next = anchor == None ? _lruHead : _next[anchor];
        _prev[block] = anchor;
        _next[block] = next;
        if (anchor == None)
        {
            _lruHead = block;
        }
        else
        {
            _next[anchor] = block;
        }

        if (next == None)
        {
            _lruTail = block;
        }
        else
        {
            _prev[next] = block;
        }

        _lruSince[block] = enteredAt;
        _inLru[block] = true;
        _lruCount++;
        return block;
    }
}
