namespace Worker.Cpu;

/// <summary>
/// The paged K/V cache: <see cref="NumBlocks"/> blocks of <see cref="BlockSize"/> token slots, shared by every sequence
/// and addressed only through block tables (position p of a sequence lives in block table[p / BlockSize], slot
/// p % BlockSize). Per layer one K and one V array laid out [block][kvHead][slot][headDim] f32, so one block of one
/// K/V head is a contiguous BlockSize x HeadDim tile that the attention kernels read once for all query heads of its
/// group. Pinned arrays on the pinned object heap: no native lifetime to manage.
/// </summary>
public sealed unsafe class KvPool
{
    private readonly float[][] _k;
    private readonly float[][] _v;
    private readonly float*[] _kPtr;
    private readonly float*[] _vPtr;

    public LlamaConfig Config { get; }
    public int NumBlocks { get; }
    public int BlockSize { get; }
    /// <summary>Bytes of K and V held per token slot across all layers.</summary>
    public long BytesPerToken => 2L * Config.Layers * Config.KvDim * sizeof(float);

    public KvPool(LlamaConfig config, int numBlocks, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(numBlocks, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        Config = config;
        NumBlocks = numBlocks;
        BlockSize = blockSize;
        long perLayer = (long)numBlocks * blockSize * config.KvDim;
        if (perLayer > Array.MaxLength) throw new ArgumentException($"K/V pool of {numBlocks} x {blockSize} slots is too large for one layer array");
        _k = new float[config.Layers][];
        _v = new float[config.Layers][];
        _kPtr = new float*[config.Layers];
        _vPtr = new float*[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            _k[l] = GC.AllocateArray<float>((int)perLayer, pinned: true);
            _v[l] = GC.AllocateArray<float>((int)perLayer, pinned: true);
            _kPtr[l] = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _k[l][0]);
            _vPtr[l] = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref _v[l][0]);
        }
    }

    /// <summary>Start of the [BlockSize][HeadDim] K tile of (layer, block, kvHead).</summary>
    internal float* K(int layer, int block, int kvHead) => _kPtr[layer] + ((long)block * Config.KvHeads + kvHead) * BlockSize * Config.HeadDim;

    internal float* V(int layer, int block, int kvHead) => _vPtr[layer] + ((long)block * Config.KvHeads + kvHead) * BlockSize * Config.HeadDim;
}
