namespace Worker.Engine;

/// <summary>
/// Roofline profile of one GPU (or tensor-parallel group) serving one dense transformer.
/// A step's time is max(compute, memory) + tensor-parallel all-reduce + a fixed per-step overhead:
/// <list type="bullet">
/// <item>compute = FLOPs per GPU / (peak dense BF16 FLOPs × MFU); FLOPs = 2·params·tokens (GEMMs) +
/// 4·layers·hidden·Σ(query tokens × attended context) (QKᵀ and AV).</item>
/// <item>memory = (weight bytes per GPU + KV bytes read per GPU) / (HBM bandwidth × efficiency).</item>
/// </list>
/// Weights are streamed once per step whatever the batch, and compute overlaps that stream, hence max, not sum.
/// Every constant and its source is in docs/worker.md.
/// </summary>
public sealed record ModelProfile
{
    /// <summary>Profile id, e.g. "h100-llama3-8b".</summary>
    public required string Name { get; init; }

    /// <summary>Model id served on /v1/models, e.g. "llama3-8b".</summary>
    public required string ServedModel { get; init; }

    /// <summary>GPU name (documentation only).</summary>
    public required string Gpu { get; init; }

    /// <summary>Peak dense BF16 tensor FLOP/s of one GPU.</summary>
    public required double PeakFlopsPerGpu { get; init; }

    /// <summary>HBM bandwidth of one GPU in bytes/s.</summary>
    public required double HbmBytesPerSecond { get; init; }

    /// <summary>HBM capacity of one GPU in bytes (as the driver reports it).</summary>
    public required long HbmBytesPerGpu { get; init; }

    /// <summary>Tensor-parallel degree (GPUs sharing every layer).</summary>
    public int TensorParallel { get; init; } = 1;

    /// <summary>Parameter count of the model.</summary>
    public required double Parameters { get; init; }

    public required int Layers { get; init; }
    public required int Hidden { get; init; }
    public required int KvHeads { get; init; }
    public required int HeadDim { get; init; }

    /// <summary>Bytes per weight (2 = BF16).</summary>
    public double BytesPerParameter { get; init; } = 2;

    /// <summary>Bytes per KV element (2 = BF16 KV cache).</summary>
    public int KvBytesPerElement { get; init; } = 2;

    /// <summary>Model FLOPs utilisation reached by prefill GEMMs + attention.</summary>
    public required double Mfu { get; init; }

    /// <summary>Fraction of HBM bandwidth reached when streaming weights and KV.</summary>
    public required double HbmEfficiency { get; init; }

    /// <summary>Fixed per-step cost: scheduler, sampling, kernel launches not hidden by CUDA graphs.</summary>
    public required double StepOverheadSeconds { get; init; }

    /// <summary>Latency of one small all-reduce across the TP group (0 when TP = 1).</summary>
    public double AllReduceLatencySeconds { get; init; }

    /// <summary>Per-GPU interconnect bandwidth used by ring all-reduce (NVLink).</summary>
    public double InterconnectBytesPerSecond { get; init; } = 450e9;

    /// <summary>Share of HBM the engine may use (vLLM gpu_memory_utilization).</summary>
    public double GpuMemoryUtilization { get; init; } = 0.9;

    /// <summary>HBM reserved per GPU for activations, CUDA graphs and the allocator (not weights, not KV).</summary>
    public required long ActivationReserveBytes { get; init; }

    /// <summary>
    /// Host-to-device copy bandwidth of one GPU's link in bytes/s, used to reload KV from the host tier. Default 50 GB/s:
    /// PCIe Gen5 x16 is 32 GT/s × 16 lanes × 128/130 ≈ 63 GB/s per direction in theory, and pinned-memory copies measured
    /// with NVIDIA's nvbandwidth on H100 hosts reach about 53 GB/s (docs/worker.md, "Host KV tier").
    /// </summary>
    public double HostToDeviceBytesPerSecond { get; init; } = 50e9;

    /// <summary>
    /// Host tier size as a multiple of the HBM pool when the worker asks for the profile default: 2, SGLang HiCache's
    /// default <c>--hicache-ratio</c>.
    /// </summary>
    public double DefaultHostKvRatio { get; init; } = 2.0;

    /// <summary>Seconds to copy the KV of <paramref name="tokens"/> tokens from host memory into one GPU's HBM.</summary>
    public double HostLoadSeconds(long tokens) => tokens <= 0 ? 0 : tokens * KvBytesPerTokenPerGpu / HostToDeviceBytesPerSecond;

    /// <summary>
    /// A step that computes for <paramref name="computeSeconds"/> while <paramref name="loadSeconds"/> of KV is reloaded
    /// layer by layer (LMCache / HiCache layer-wise loading): layer l's copy overlaps layer l−1's compute, so with L equal
    /// layers the step ends at max(load + compute/L, load/L + compute), after <paramref name="startDelaySeconds"/> waiting
    /// for the link or for a prefetch still in flight.
    /// </summary>
    public double TieredStepSeconds(double computeSeconds, double loadSeconds, double startDelaySeconds)
    {
        double delay = Math.Max(0, startDelaySeconds);
        if (loadSeconds <= 0)
        {
            return delay + computeSeconds;
        }

        return delay + Math.Max(loadSeconds + computeSeconds / Layers, loadSeconds / Layers + computeSeconds);
    }

    /// <summary>KV bytes per token for the whole model: 2 (K and V) × layers × kv_heads × head_dim × bytes.</summary>
    public long KvBytesPerToken => 2L * Layers * KvHeads * HeadDim * KvBytesPerElement;

    /// <summary>KV bytes per token held by one GPU (KV heads are split across the TP group).</summary>
    public double KvBytesPerTokenPerGpu => (double)KvBytesPerToken / TensorParallel;

    /// <summary>Weight bytes held (and streamed every step) by one GPU.</summary>
    public double WeightBytesPerGpu => Parameters * BytesPerParameter / TensorParallel;

    /// <summary>Nominal prefill throughput (2048-token prompt, empty cache), for routers' cost models.</summary>
    public double PrefillTokensPerSecond => 2048 / PrefillSeconds(2048, 0);

    /// <summary>Time of one prefill chunk of <paramref name="newTokens"/> after <paramref name="cachedContextTokens"/> already-computed tokens.</summary>
    public double PrefillSeconds(int newTokens, long cachedContextTokens) =>
        StepSeconds(newTokens, cachedContextTokens, 0, 0);

    /// <summary>Time of one decode iteration of <paramref name="batchSize"/> sequences whose contexts sum to <paramref name="totalContextTokens"/>.</summary>
    public double DecodeStepSeconds(int batchSize, long totalContextTokens) =>
        StepSeconds(0, 0, batchSize, totalContextTokens);

    /// <summary>
    /// Mixed step: one prefill chunk of <paramref name="prefillTokens"/> after <paramref name="prefillContextTokens"/> cached tokens,
    /// plus <paramref name="decodeSeqs"/> decode tokens whose contexts sum to <paramref name="decodeContextTokens"/>.
    /// </summary>
    public double StepSeconds(int prefillTokens, long prefillContextTokens, int decodeSeqs, long decodeContextTokens)
    {
        double attendedPairs = AttendedPairs(prefillTokens, prefillContextTokens) + decodeContextTokens;
        double kvTokensRead = (prefillTokens > 0 ? prefillContextTokens : 0) + decodeContextTokens;
        return StepSecondsFromTotals(prefillTokens + decodeSeqs, attendedPairs, kvTokensRead);
    }

    /// <summary>Query-token × context-token pairs of a causal prefill chunk: each new token attends to the cached context and, on average, half the chunk.</summary>
    public static double AttendedPairs(int newTokens, long cachedContextTokens) =>
        newTokens <= 0 ? 0 : newTokens * (cachedContextTokens + (newTokens + 1) / 2.0);

    /// <summary>
    /// Roofline step time from batch totals: <paramref name="tokens"/> query tokens through the GEMMs,
    /// <paramref name="attendedPairs"/> query×key pairs of attention, <paramref name="kvTokensRead"/> tokens of KV read from HBM.
    /// </summary>
    public double StepSecondsFromTotals(int tokens, double attendedPairs, double kvTokensRead)
    {
        if (tokens <= 0)
        {
            return 0;
        }

        double flops = (2.0 * Parameters * tokens + 4.0 * Layers * Hidden * attendedPairs) / TensorParallel;
        double compute = flops / (PeakFlopsPerGpu * Mfu);
        double bytes = WeightBytesPerGpu + kvTokensRead * KvBytesPerTokenPerGpu;
        double memory = bytes / (HbmBytesPerSecond * HbmEfficiency);
        return Math.Max(compute, memory) + AllReduceSeconds(tokens) + StepOverheadSeconds;
    }

    /// <summary>
    /// Megatron-style TP does two all-reduces per layer (after attention and after the MLP) of tokens × hidden BF16 activations;
    /// a ring all-reduce moves 2(p−1)/p of the message per GPU. Not overlapped with compute (vLLM default).
    /// </summary>
    public double AllReduceSeconds(int tokens)
    {
        if (TensorParallel <= 1)
        {
            return 0;
        }

        double message = (double)tokens * Hidden * 2;
        double perAllReduce = AllReduceLatencySeconds + 2.0 * (TensorParallel - 1) / TensorParallel * message / InterconnectBytesPerSecond;
        return 2.0 * Layers * perAllReduce;
    }

    /// <summary>KV blocks that fit in HBM × utilisation after weights and the activation reserve (vLLM's profiling rule).</summary>
    public int DefaultKvBlocks(int blockSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(blockSize, 1);
        double free = HbmBytesPerGpu * GpuMemoryUtilization - WeightBytesPerGpu - ActivationReserveBytes;
        double blocks = free / (KvBytesPerTokenPerGpu * blockSize);
        return blocks < 1 ? 0 : (int)Math.Min(int.MaxValue, Math.Floor(blocks));
    }
}
