using System.Runtime.InteropServices;
using Worker.Contract;

namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// Precise prefix index fed by the workers' own KV events (Dynamo's KV router, llm-d's precise prefix scorer):
/// per worker, the set of block hashes the worker reports cached. Applies stored / removed / cleared in sequence
/// order, tracks each worker's last seq, detects gaps (a seq jump means events were lost: the worker's set is
/// marked stale until a snapshot replaces it), and survives restarts (seq going backwards or a cleared event
/// resets the worker's set). Stored events carry the parent hash; because hashes are chained, a hash already
/// names its whole prefix, so a set is enough for leading-block matching and the parent is not needed.
/// <para>
/// Speculative entries: on routing, the request's chain is inserted for the chosen worker with a short TTL
/// (llm-d uses 2 s) so siblings that arrive before the worker's stored event still see the overlap.
/// </para>
/// <para>
/// Watches: an owner may watch (worker, block hash) pairs with a weight (<see cref="Watch"/>); the index keeps, per
/// worker, the summed weight of the watched pairs whose block the worker holds (confirmed, not speculative), updated as
/// events and snapshots arrive (<see cref="WatchedHeld"/>). Memory-aware placement watches the last prompt block of each
/// idle session context, so it counts only contexts the worker still holds. Cost: one dictionary probe per stored /
/// removed block of a worker that has watches, O(1) per watch change, O(watches of the worker) per snapshot or clear.
/// </para>
/// Knobs: speculative TTL, per-worker block cap (a misbehaving stream cannot grow memory without bound),
/// speculative budget, max workers. Thread-safe: events arrive on subscriber threads while routing reads;
/// every public member takes the index's lock (the routing policy takes it once per decision).
/// </summary>
public sealed partial class PreciseIndex
{
    private readonly Lock _lock = new();
    private readonly int _words;
    private readonly int _maxWorkers;
    private readonly int _maxBlocksPerWorker;
    private readonly Dictionary<ulong, int> _nodes = [];
    private ulong[] _nodeMask = [];
    private int[] _nodeRefs = [];
    private int _nodeSlots;
    private readonly Stack<int> _freeNodes = new();
    private readonly WorkerState?[] _workers;
    private readonly Dictionary<ulong, long>?[] _watched; // per worker: block hash -> summed watch weight
    private readonly long[] _watchedHeld;                // per worker: weight of watched blocks the worker holds

    /// <summary>Creates a precise index.</summary>
    /// <param name="time">Clock for speculative entries.</param>
    /// <param name="speculativeTtl">How long an insert-on-route entry counts before the worker's events confirm it.</param>
    /// <param name="maxBlocksPerWorker">Most confirmed blocks kept per worker; further stored blocks are dropped (counted).</param>
    /// <param name="speculativeBudget">Global budget of the speculative (block, worker) entries.</param>
    /// <param name="maxWorkers">Width of the worker bitset.</param>
    public PreciseIndex(TimeProvider time, TimeSpan speculativeTtl, int maxBlocksPerWorker = 1 << 20, int speculativeBudget = 1 << 18, int maxWorkers = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBlocksPerWorker, 1);
        _maxWorkers = maxWorkers;
        _maxBlocksPerWorker = maxBlocksPerWorker;
        _words = (maxWorkers + 63) / 64;
        _workers = new WorkerState?[maxWorkers];
        _watched = new Dictionary<ulong, long>?[maxWorkers];
        _watchedHeld = new long[maxWorkers];
        Speculative = new ApproximatePrefixIndex(time, speculativeTtl, speculativeBudget, maxWorkers);
    }

    /// <summary>The speculative (insert-on-route) entries.</summary>
    internal ApproximatePrefixIndex Speculative { get; }

    /// <summary>The lock a caller takes to read presence for a whole walk.</summary>
    internal Lock SyncRoot => _lock;

    /// <summary>Stored blocks dropped because a worker exceeded the per-worker cap.</summary>
    public long DroppedBlocks { get; private set; }

    /// <summary>Resyncs requested so far (gaps and restarts mid-stream).</summary>
    public long ResyncsRequested { get; private set; }

    /// <summary>Last applied event seq of a worker (0 before any event or snapshot).</summary>
    public long LastSeq(int worker)
    {
        lock (_lock)
        {
            return Get(worker)?.LastSeq ?? 0;
        }
    }

    /// <summary>True when the worker's set is stale (a gap or restart was seen) and a snapshot should be applied.</summary>
    public bool NeedsResync(int worker)
    {
        lock (_lock)
        {
            return Get(worker)?.NeedsResync ?? false;
        }
    }

    /// <summary>True once an event or snapshot of <paramref name="worker"/> has been applied (a subscriber feeds it).</summary>
    public bool IsTracking(int worker)
    {
        lock (_lock)
        {
            return Get(worker) is not null;
        }
    }

    /// <summary>Same as <see cref="IsTracking"/>; caller holds <see cref="SyncRoot"/>.</summary>
    internal bool IsTrackingUnlocked(int worker) => Get(worker) is not null;

    /// <summary>Confirmed blocks held for a worker.</summary>
    public int CountFor(int worker)
    {
        lock (_lock)
        {
            return Get(worker)?.Blocks.Count ?? 0;
        }
    }

    /// <summary>Applies one event of <paramref name="worker"/>'s stream.</summary>
    public KvApplyResult Apply(int worker, in KvEvent e)
    {
        lock (_lock)
        {
            var s = GetOrAdd(worker);
            if (s is null)
            {
                return KvApplyResult.Duplicate;
            }

            if (e.Type == KvEventType.Cleared)
            {
                ClearWorker(worker, s);
                s.LastSeq = e.Seq;
                s.NeedsResync = false;
                return KvApplyResult.Reset;
            }

            if (e.Seq == s.LastSeq && s.LastSeq != 0)
            {
                return KvApplyResult.Duplicate;
            }

            var result = KvApplyResult.Applied;
            if (e.Seq < s.LastSeq)
            {
                // A new incarnation of the worker: its seq restarted. Everything we hold for it is stale.
                ClearWorker(worker, s);
                s.LastSeq = 0;
                s.NeedsResync = false;
                result = KvApplyResult.Reset;
            }

            if (s.NeedsResync)
            {
                return KvApplyResult.AwaitingResync;
            }

            if (e.Seq != s.LastSeq + 1)
            {
                // Gap: events between were lost. Keep what we have (mostly right) but ask for a snapshot.
                s.NeedsResync = true;
                ResyncsRequested++;
                return KvApplyResult.GapNeedsResync;
            }

            s.LastSeq = e.Seq;
            var hashes = e.BlockHashes ?? [];
            if (e.Medium == KvMedium.Cpu)
            {
                ApplyHost(s, e.Type, hashes);
                return result;
            }

            switch (e.Type)
            {
                case KvEventType.Stored:
                    foreach (ulong h in hashes)
                    {
                        AddBlock(worker, s, h);
                    }

                    break;
                case KvEventType.Removed:
                    foreach (ulong h in hashes)
                    {
                        RemoveBlock(worker, s, h);
                    }

                    break;
                default:
                    break; // pin_dropped: the blocks stay cached until a removed event says otherwise
            }

            return result;
        }
    }

    /// <summary>
    /// Replaces <paramref name="worker"/>'s sets with a snapshot taken at <paramref name="seq"/> (HBM hashes and, from a
    /// worker with a host tier, <paramref name="hostBlockHashes"/>); events continue after it.
    /// </summary>
    public void ApplySnapshot(int worker, long seq, ReadOnlySpan<ulong> blockHashes, ReadOnlySpan<ulong> hostBlockHashes = default)
    {
        lock (_lock)
        {
            var s = GetOrAdd(worker);
            if (s is null)
            {
                return;
            }

            ClearWorker(worker, s);
            foreach (ulong h in blockHashes)
            {
                AddBlock(worker, s, h);
            }

            foreach (ulong h in hostBlockHashes)
            {
                if (s.HostBlocks.Count < _maxBlocksPerWorker)
                {
                    s.HostBlocks.Add(h);
                }
            }

            s.LastSeq = seq;
            s.NeedsResync = false;
        }
    }

    /// <summary>Speculatively records that <paramref name="blockHashes"/> will be cached on <paramref name="worker"/> (short TTL).</summary>
    public void InsertSpeculative(int worker, ReadOnlySpan<ulong> blockHashes)
    {
        lock (_lock)
        {
            Speculative.Insert(worker, blockHashes, int.MaxValue);
        }
    }

    /// <summary>Forgets a worker entirely (it left the fleet); its next event starts it afresh.</summary>
    public void RemoveWorker(int worker)
    {
        lock (_lock)
        {
            var s = Get(worker);
            if (s is not null)
            {
                ClearWorker(worker, s);
                _workers[worker] = null;
            }

            Speculative.RemoveWorker(worker);
        }
    }

    /// <summary>Leading blocks of <paramref name="blockHashes"/> each worker holds (confirmed or speculative); returns the longest.</summary>
    public int Match(ReadOnlySpan<ulong> blockHashes, Span<int> matchedBlocks)
    {
        lock (_lock)
        {
            Speculative.ExpireNow();
            matchedBlocks.Clear();
            Span<ulong> running = stackalloc ulong[_words];
            Span<ulong> present = stackalloc ulong[_words];
            ApproximatePrefixIndex.SetLowBits(running, Math.Min(matchedBlocks.Length, _maxWorkers));
            int best = 0;
            for (int i = 0; i < blockHashes.Length; i++)
            {
                present.Clear();
                OrPresence(blockHashes[i], present);
                bool any = false;
                for (int w = 0; w < _words; w++)
                {
                    ulong next = running[w] & present[w];
                    ApproximatePrefixIndex.RecordDropped(running[w] & ~next, w, i, matchedBlocks);
                    running[w] = next;
                    any |= next != 0;
                }

                if (!any)
                {
                    return best;
                }

                best = i + 1;
            }

            for (int w = 0; w < _words; w++)
            {
                ApproximatePrefixIndex.RecordDropped(running[w], w, blockHashes.Length, matchedBlocks);
            }

            return best;
        }
    }

    /// <summary>ORs confirmed and speculative presence of one block into <paramref name="mask"/>. Caller holds <see cref="SyncRoot"/>.</summary>
    internal void OrPresence(ulong blockHash, Span<ulong> mask)
    {
        if (_nodes.TryGetValue(blockHash, out int node))
        {
            var m = _nodeMask.AsSpan(node * _words, Math.Min(_words, mask.Length));
            for (int w = 0; w < m.Length; w++)
            {
                mask[w] |= m[w];
            }
        }

        Speculative.OrPresence(blockHash, mask);
    }

    private WorkerState? Get(int worker) => (uint)worker < (uint)_maxWorkers ? _workers[worker] : null;

    private WorkerState? GetOrAdd(int worker)
    {
        if ((uint)worker >= (uint)_maxWorkers)
        {
            return null;
        }

        return _workers[worker] ??= new WorkerState();
    }

    private void AddBlock(int worker, WorkerState s, ulong hash)
    {
        if (s.Blocks.Count >= _maxBlocksPerWorker)
        {
            DroppedBlocks++;
            return;
        }

        if (!s.Blocks.Add(hash))
        {
            return;
        }

        if (_watched[worker] is { Count: > 0 } watched && watched.TryGetValue(hash, out long weight))
        {
            _watchedHeld[worker] += weight;
        }

        ref int slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_nodes, hash, out bool exists);
        if (!exists)
        {
            int node;
            if (_freeNodes.Count > 0)
            {
                node = _freeNodes.Pop();
            }
            else
            {
                if (_nodeSlots == _nodeRefs.Length)
                {
                    int size = Math.Max(1024, _nodeRefs.Length * 2);
                    Array.Resize(ref _nodeRefs, size);
                    Array.Resize(ref _nodeMask, size * _words);
                }

                node = _nodeSlots++;
            }

            _nodeRefs[node] = 0;
            _nodeMask.AsSpan(node * _words, _words).Clear();
            slot = node;
        }

        int n = slot;
        _nodeMask[n * _words + (worker >> 6)] |= 1UL << (worker & 63);
        _nodeRefs[n]++;
    }

    private void RemoveBlock(int worker, WorkerState s, ulong hash)
    {
        if (!s.Blocks.Remove(hash))
        {
            return;
        }

        if (_watched[worker] is { Count: > 0 } watched && watched.TryGetValue(hash, out long weight))
        {
            _watchedHeld[worker] -= weight;
        }

        DropPresence(worker, hash);
    }

    private void DropPresence(int worker, ulong hash)
    {
        if (!_nodes.TryGetValue(hash, out int node))
        {
            return;
        }

        _nodeMask[node * _words + (worker >> 6)] &= ~(1UL << (worker & 63));
        if (--_nodeRefs[node] == 0)
        {
            _nodes.Remove(hash);
            _freeNodes.Push(node);
        }
    }

    private void ApplyHost(WorkerState s, KvEventType type, ulong[] hashes)
    {
        if (type == KvEventType.Stored)
        {
            foreach (ulong h in hashes)
            {
                if (s.HostBlocks.Count >= _maxBlocksPerWorker)
                {
                    DroppedBlocks++;
                    continue;
                }

                s.HostBlocks.Add(h);
            }
        }
        else if (type == KvEventType.Removed)
        {
            foreach (ulong h in hashes)
            {
                s.HostBlocks.Remove(h);
            }
        }
    }

    private void ClearWorker(int worker, WorkerState s)
    {
        foreach (ulong h in s.Blocks)
        {
            DropPresence(worker, h);
        }

        s.Blocks.Clear();
        s.HostBlocks.Clear();
        _watchedHeld[worker] = 0; // the watches stay: a block stored again counts again
    }

    private sealed class WorkerState
    {
        public readonly HashSet<ulong> Blocks = [];
        public readonly HashSet<ulong> HostBlocks = []; // held by the worker's host tier (reload, not recompute)
        public long LastSeq;
        public bool NeedsResync;
    }
}
