using System.Runtime.InteropServices;

namespace Gateway.Core.Routing.KvAware;

/// <summary>
/// The index's answers for the retention and memory-aware layers: watched (worker, block) weights held now, and the run of
/// a prompt's blocks a worker holds across HBM and its host tier. See the class summary in PreciseIndex.cs.
/// </summary>
public sealed partial class PreciseIndex
{
    /// <summary>
    /// Adds <paramref name="weight"/> to the watch on (<paramref name="worker"/>, <paramref name="blockHash"/>): while the
    /// worker holds that block (confirmed by its events), the weight counts in <see cref="WatchedHeld"/>. Watches of the
    /// same pair add up; <see cref="Unwatch"/> takes a weight back. O(1).
    /// </summary>
    public void Watch(int worker, ulong blockHash, long weight)
    {
        lock (_lock)
        {
            ChangeWatch(worker, blockHash, weight);
        }
    }

    /// <summary>Takes back <paramref name="weight"/> watched on (<paramref name="worker"/>, <paramref name="blockHash"/>). O(1).</summary>
    public void Unwatch(int worker, ulong blockHash, long weight)
    {
        lock (_lock)
        {
            ChangeWatch(worker, blockHash, -weight);
        }
    }

    /// <summary>Summed weight of <paramref name="worker"/>'s watched blocks that it holds now (confirmed). O(1).</summary>
    public long WatchedHeld(int worker)
    {
        lock (_lock)
        {
            return (uint)worker < (uint)_maxWorkers ? _watchedHeld[worker] : 0;
        }
    }

    /// <summary>
    /// How many blocks of <paramref name="blockHashes"/>, from <paramref name="from"/> on, <paramref name="worker"/> holds in
    /// HBM or its host tier without a break; <paramref name="hostBlocks"/> of them only in host (to be reloaded). Used
    /// after the HBM match: the context a worker would reload instead of recomputing.
    /// </summary>
    public int TieredRun(int worker, ReadOnlySpan<ulong> blockHashes, int from, out int hostBlocks)
    {
        lock (_lock)
        {
            return TieredRunUnlocked(worker, blockHashes, from, out hostBlocks);
        }
    }

    /// <summary>Same as <see cref="TieredRun"/>; caller holds <see cref="SyncRoot"/>.</summary>
    internal int TieredRunUnlocked(int worker, ReadOnlySpan<ulong> blockHashes, int from, out int hostBlocks)
    {
        hostBlocks = 0;
        var s = Get(worker);
        if (s is null || s.HostBlocks.Count == 0)
        {
            return 0;
        }

        int n = 0;
        for (int i = Math.Max(0, from); i < blockHashes.Length; i++, n++)
        {
            ulong h = blockHashes[i];
            if (!s.Blocks.Contains(h))
            {
                if (!s.HostBlocks.Contains(h))
                {
                    break;
                }

                hostBlocks++;
            }
        }

        return n;
    }

    /// <summary>Blocks the worker's host tier holds (confirmed by its events).</summary>
    public int HostCountFor(int worker)
    {
        lock (_lock)
        {
            return Get(worker)?.HostBlocks.Count ?? 0;
        }
    }

    /// <summary>True when <paramref name="worker"/>'s events confirm it holds <paramref name="blockHash"/> (speculative entries do not count).</summary>
    public bool Holds(int worker, ulong blockHash)
    {
        lock (_lock)
        {
            return Get(worker)?.Blocks.Contains(blockHash) ?? false;
        }
    }

    private void ChangeWatch(int worker, ulong blockHash, long delta)
    {
        if ((uint)worker >= (uint)_maxWorkers || delta == 0)
        {
            return;
        }

        var watched = _watched[worker] ??= [];
        ref long slot = ref CollectionsMarshal.GetValueRefOrAddDefault(watched, blockHash, out _);
        slot += delta;
        if (slot == 0)
        {
            watched.Remove(blockHash);
        }

        if (Get(worker)?.Blocks.Contains(blockHash) == true)
        {
            _watchedHeld[worker] += delta;
        }
    }
}
