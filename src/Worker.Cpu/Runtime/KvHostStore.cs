using System.Diagnostics;

namespace Worker.Cpu;

/// <summary>
/// The CPU backend's second KV tier: whole blocks copied out of a <see cref="KvPool"/> into host-memory buffers keyed by
/// the block's chained hash, and copied back into any pool block later (the engine's reload, or a prefetch). A block's
/// K and V tiles of every layer and KV head go into one buffer of <see cref="FloatsPerBlock"/> floats (so a reloaded
/// block is bit-identical to the one that left); buffers of forgotten blocks are reused. Every copy is timed
/// (<see cref="CopyOutSeconds"/>, <see cref="CopyInSeconds"/>). On the CPU "host" and "device" are the same DRAM, so the
/// copy is a memcpy; it stands for the PCIe transfer of a GPU backend and keeps the same contract.
/// Not thread-safe (the engine loop calls it between steps, under its lock).
/// </summary>
public sealed unsafe class KvHostStore
{
    private readonly KvPool _pool;
    private readonly Dictionary<ulong, float[]> _blocks = [];
    private readonly Stack<float[]> _spare = new();
    private readonly int _tile;

    public KvHostStore(KvPool pool)
    {
        ArgumentNullException.ThrowIfNull(pool);
        _pool = pool;
        _tile = pool.BlockSize * pool.Config.HeadDim;
        FloatsPerBlock = 2L * pool.Config.Layers * pool.Config.KvHeads * _tile;
    }

    /// <summary>Floats one stored block takes (K and V of every layer and KV head).</summary>
    public long FloatsPerBlock { get; }

    /// <summary>Blocks held.</summary>
    public int Count => _blocks.Count;

    /// <summary>Bytes held by stored blocks.</summary>
    public long Bytes => _blocks.Count * FloatsPerBlock * sizeof(float);

    public long BlocksCopiedOut { get; private set; }
    public long BlocksCopiedIn { get; private set; }
    public double CopyOutSeconds { get; private set; }
    public double CopyInSeconds { get; private set; }

    /// <summary>True if the block of <paramref name="hash"/> is held.</summary>
    public bool Contains(ulong hash) => _blocks.ContainsKey(hash);

    /// <summary>Copies pool block <paramref name="block"/> out under <paramref name="hash"/> (replacing a held copy).</summary>
    public void CopyOut(int block, ulong hash)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)block, (uint)_pool.NumBlocks, nameof(block));
        long start = Stopwatch.GetTimestamp();
        if (!_blocks.TryGetValue(hash, out var buffer))
        {
            buffer = _spare.Count > 0 ? _spare.Pop() : GC.AllocateUninitializedArray<float>(checked((int)FloatsPerBlock));
            _blocks.Add(hash, buffer);
        }

        fixed (float* dst = buffer)
        {
            long at = 0;
            for (int l = 0; l < _pool.Config.Layers; l++)
            {
                for (int g = 0; g < _pool.Config.KvHeads; g++)
                {
                    new ReadOnlySpan<float>(_pool.K(l, block, g), _tile).CopyTo(new Span<float>(dst + at, _tile));
                    new ReadOnlySpan<float>(_pool.V(l, block, g), _tile).CopyTo(new Span<float>(dst + at + _tile, _tile));
                    at += 2 * _tile;
                }
            }
        }

        BlocksCopiedOut++;
        CopyOutSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>Copies the held block of <paramref name="hash"/> into pool block <paramref name="block"/>; false if not held.</summary>
    public bool CopyIn(ulong hash, int block)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)block, (uint)_pool.NumBlocks, nameof(block));
        if (!_blocks.TryGetValue(hash, out var buffer))
        {
            return false;
        }

        long start = Stopwatch.GetTimestamp();
        fixed (float* src = buffer)
        {
            long at = 0;
            for (int l = 0; l < _pool.Config.Layers; l++)
            {
                for (int g = 0; g < _pool.Config.KvHeads; g++)
                {
                    new ReadOnlySpan<float>(src + at, _tile).CopyTo(new Span<float>(_pool.K(l, block, g), _tile));
                    new ReadOnlySpan<float>(src + at + _tile, _tile).CopyTo(new Span<float>(_pool.V(l, block, g), _tile));
                    at += 2 * _tile;
                }
            }
        }

        BlocksCopiedIn++;
        CopyInSeconds += Stopwatch.GetElapsedTime(start).TotalSeconds;
        return true;
    }

    /// <summary>Drops the block of <paramref name="hash"/> (its buffer is kept for reuse).</summary>
    public void Forget(ulong hash)
    {
        if (_blocks.Remove(hash, out var buffer))
        {
            _spare.Push(buffer);
        }
    }

    /// <summary>Drops every block.</summary>
    public void Clear()
    {
        foreach (var b in _blocks.Values)
        {
            _spare.Push(b);
        }

        _blocks.Clear();
    }
}
