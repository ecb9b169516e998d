namespace Simulator.Workload;

/// <summary>
/// Upper bounds on the prefix-hit ratio any router can reach on a request stream, replayed in nominal arrival order:
/// <see cref="Unbounded"/> (one cache that never evicts: every block seen before is a hit) and <see cref="Pooled"/>
/// (one cache the size of the whole fleet's KV pool, evicting by Belady's MIN: the block whose next use is furthest
/// away, never-again blocks first). A fleet of separate caches of the same total size, with running requests holding
/// memory too, can do no better than <see cref="Pooled"/>, so it is the ideal a capacity-bound scenario is judged
/// against. MIN evicts a block no earlier than any block after it in the same prompt (a prefix is used whenever its
/// extension is, and among blocks next used by the same request the one pushed last, the deepest, goes first), so the
/// cache stays prefix-closed and every cached block of a prompt is part of its cached lead. Time and memory are linear
/// in the stream's blocks.
/// </summary>
public static class BoundedIdeal
{
    /// <summary>Cached prompt tokens / prompt tokens of one cache that never evicts.</summary>
    /// <param name="blocks">Each request's block hashes, in arrival order.</param>
    /// <param name="promptTokens">Each request's prompt tokens.</param>
    /// <param name="blockSize">Tokens per block.</param>
    public static double Unbounded(IReadOnlyList<ulong[]> blocks, IReadOnlyList<int> promptTokens, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(promptTokens);
        var seen = new HashSet<ulong>();
        var tally = new Tally(blockSize);
        for (int k = 0; k < blocks.Count; k++)
        {
            tally.Add(blocks[k], promptTokens[k], seen.Contains);
            seen.UnionWith(blocks[k]);
        }

        return tally.Ratio;
    }

    /// <summary>Cached prompt tokens / prompt tokens of one cache of <paramref name="capacityBlocks"/> blocks under Belady's MIN.</summary>
    /// <param name="blocks">Each request's block hashes, in arrival order.</param>
    /// <param name="promptTokens">Each request's prompt tokens.</param>
    /// <param name="blockSize">Tokens per block.</param>
    /// <param name="capacityBlocks">Blocks the cache holds (the fleet's pool).</param>
    public static double Pooled(IReadOnlyList<ulong[]> blocks, IReadOnlyList<int> promptTokens, int blockSize, long capacityBlocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(promptTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBlocks);
        int n = blocks.Count;

        // Next use (request index; n = never) of every block occurrence, by one backward pass.
        var nextUse = new int[n][];
        var last = new Dictionary<ulong, int>();
        for (int k = n - 1; k >= 0; k--)
        {
            var hashes = blocks[k];
            var next = nextUse[k] = new int[hashes.Length];
            for (int j = 0; j < hashes.Length; j++)
            {
                next[j] = last.TryGetValue(hashes[j], out int at) ? at : n;
            }

            foreach (ulong h in hashes)
            {
                last[h] = k;
            }
        }

        last = null;
        var cache = new Buckets(n + 1);
        var tally = new Tally(blockSize);
        for (int k = 0; k < n; k++)
        {
            var hashes = blocks[k];
            tally.Add(hashes, promptTokens[k], cache.Contains);

            // Every block of the prompt is (re)filed under its next use, in prompt order, then the furthest go.
            for (int j = 0; j < hashes.Length; j++)
            {
                cache.File(hashes[j], nextUse[k][j]);
            }

            while (cache.Count > capacityBlocks)
            {
                cache.EvictFurthest();
            }
        }

        return tally.Ratio;
    }

    /// <summary>
    /// Cached prompt tokens / prompt tokens of one cache of <paramref name="capacityBlocks"/> blocks that evicts the
    /// least recently used block, as an engine's prefix cache does (a prompt's blocks are touched deepest first, so its
    /// root stays the most recent and a prefix outlives its extensions, as vLLM frees a finished sequence's tail
    /// first). What a router that made the fleet behave like one engine would hit: the realistic ideal next to MIN.
    /// </summary>
    public static double PooledLru(IReadOnlyList<ulong[]> blocks, IReadOnlyList<int> promptTokens, int blockSize, long capacityBlocks)
    {
        ArgumentNullException.ThrowIfNull(blocks);
        ArgumentNullException.ThrowIfNull(promptTokens);
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBlocks);
        var order = new LinkedList<ulong>();                    // most recent first
        var at = new Dictionary<ulong, LinkedListNode<ulong>>();
        var tally = new Tally(blockSize);
        for (int k = 0; k < blocks.Count; k++)
        {
            var hashes = blocks[k];
            tally.Add(hashes, promptTokens[k], at.ContainsKey);
            for (int j = hashes.Length - 1; j >= 0; j--)
            {
                if (at.Remove(hashes[j], out var node))
                {
                    order.Remove(node);
                }

                at[hashes[j]] = order.AddFirst(hashes[j]);
            }

            while (at.Count > capacityBlocks)
            {
                at.Remove(order.Last!.Value);
                order.RemoveLast();
            }
        }

        return tally.Ratio;
    }

    /// <summary>Cached prompt tokens (a prompt's leading cached blocks, at most its length) over prompt tokens.</summary>
    private sealed class Tally(int blockSize)
    {
        private long _hit;
        private long _total;

        public double Ratio => _total == 0 ? 0 : (double)_hit / _total;

        public void Add(ulong[] hashes, int promptTokens, Func<ulong, bool> cached)
        {
            int lead = 0;
            while (lead < hashes.Length && cached(hashes[lead]))
            {
                lead++;
            }

            _hit += Math.Min((long)lead * blockSize, promptTokens);
            _total += promptTokens;
        }
    }

    /// <summary>Cached blocks filed by next use: one intrusive LIFO list per request index, the furthest non-empty one tracked.</summary>
    private sealed class Buckets(int buckets)
    {
        private readonly int[] _head = Enumerable.Repeat(-1, buckets).ToArray();
        private readonly Dictionary<ulong, int> _slotOf = [];
        private readonly List<ulong> _hash = [];
        private readonly List<int> _bucket = [];
        private readonly List<int> _prev = [];
        private readonly List<int> _next = [];
        private readonly Stack<int> _free = new();
        private int _top = -1;

        public int Count => _slotOf.Count;

        public bool Contains(ulong hash) => _slotOf.ContainsKey(hash);

        public void File(ulong hash, int bucket)
        {
            if (_slotOf.TryGetValue(hash, out int slot))
            {
                Unlink(slot);
            }
            else
            {
                if (_free.TryPop(out slot))
                {
                    _hash[slot] = hash;
                }
                else
                {
                    slot = _hash.Count;
                    _hash.Add(hash);
                    _bucket.Add(0);
                    _prev.Add(-1);
                    _next.Add(-1);
                }

                _slotOf.Add(hash, slot);
            }

            _bucket[slot] = bucket;
            _prev[slot] = -1;
            _next[slot] = _head[bucket];
            if (_head[bucket] >= 0)
            {
                _prev[_head[bucket]] = slot;
            }

            _head[bucket] = slot;
            _top = Math.Max(_top, bucket);
        }

        public void EvictFurthest()
        {
            while (_head[_top] < 0)
            {
                _top--;
            }

            int slot = _head[_top];
            Unlink(slot);
            _slotOf.Remove(_hash[slot]);
            _free.Push(slot);
        }

        private void Unlink(int slot)
        {
            int p = _prev[slot], q = _next[slot];
            if (p >= 0)
            {
                _next[p] = q;
            }
            else
            {
                _head[_bucket[slot]] = q;
            }

            if (q >= 0)
            {
                _prev[q] = p;
            }
        }
    }
}
