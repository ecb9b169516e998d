using Gateway.Core.Tokenization;
using Worker.Cpu;
using Worker.Engine;

namespace Worker.Backends;

/// <summary>
/// Everything the cpu backend adds to a worker: the loaded GGUF model, the <see cref="CpuStepExecutor"/> over a K/V pool
/// of the engine's shape, and a <see cref="ModelProfile"/> calibrated at startup (one timed prefill and decode) so that
/// /worker/state reports this machine's prefill tokens/s and decode step time to routers instead of a GPU's.
/// Knobs (from <see cref="WorkerOptions"/>): model path, threads, KV blocks (0 = 64k tokens, at most 1 GiB of K/V),
/// block size, max batch tokens, max model length (capped by the model's context length).
/// </summary>
internal sealed class CpuBackend : IDisposable
{
    /// <summary>Default K/V budget when --kv-blocks is 0.</summary>
    public const long DefaultKvBytes = 1L << 30;

    /// <summary>Default K/V capacity in tokens when --kv-blocks is 0 (before the byte budget).</summary>
    public const int DefaultKvTokens = 65536;

    private CpuBackend(LlamaModel model, CpuStepExecutor executor, ModelProfile profile, int kvBlocks, int maxModelLength)
    {
        Model = model;
        Executor = executor;
        Profile = profile;
        KvBlocks = kvBlocks;
        MaxModelLength = maxModelLength;
    }

    public LlamaModel Model { get; }

    public CpuStepExecutor Executor { get; }

    public ModelProfile Profile { get; }

    public int KvBlocks { get; }

    public int MaxModelLength { get; }

    /// <summary>Loads the model named by <paramref name="options"/>; throws with a clear message when it cannot serve.</summary>
    public static CpuBackend Load(WorkerOptions options, string servedModel)
    {
        var model = LlamaModel.Load(options.ModelPath!);
        try
        {
            var c = model.Config;
            CheckByteVocabulary(model);
            long bytesPerToken = 2L * c.Layers * c.KvDim * sizeof(float);
            int kvBlocks = options.KvBlocks > 0
                ? options.KvBlocks
                : (int)Math.Max(1, Math.Min(DefaultKvTokens, DefaultKvBytes / bytesPerToken) / options.BlockSize);
            int maxLen = Math.Min(options.MaxModelLength, c.MaxContext);
            var executor = new CpuStepExecutor(model, kvBlocks, options.BlockSize, options.MaxBatchTokens, options.Threads);
            var (calibrated, prefill, decode) = executor.Calibrate(256);
            return new CpuBackend(model, executor, CalibratedProfile(model, servedModel, options.Threads, calibrated, prefill, decode), kvBlocks, maxLen);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A roofline whose compute rate reproduces the measured prefill and whose memory rate reproduces the measured decode
    /// step: MFU and bandwidth efficiency are 1 and the peaks are what this machine achieved.
    /// </summary>
    internal static ModelProfile CalibratedProfile(LlamaModel model, string servedModel, int threads, int prefillTokens, double prefillSeconds, double decodeSeconds)
    {
        var c = model.Config;
        double bytesPerWeight = model.WeightType switch
        {
            GgufTensorType.F32 => 4,
            GgufTensorType.F16 => 2,
            _ => 34.0 / 32, // Q8_0: 32 int8 + one f16 scale
        };
        double parameters = model.WeightBytes / bytesPerWeight;
        return new ModelProfile
        {
            Name = "cpu",
            ServedModel = servedModel,
            Gpu = $"CPU, {threads} threads ({model.WeightType} weights)",
            PeakFlopsPerGpu = 2.0 * parameters * prefillTokens / Math.Max(prefillSeconds, 1e-9),
            Mfu = 1,
            HbmBytesPerSecond = model.WeightBytes / Math.Max(decodeSeconds, 1e-9),
            HbmEfficiency = 1,
            HbmBytesPerGpu = long.MaxValue / 4,
            Parameters = parameters,
            BytesPerParameter = bytesPerWeight,
            Layers = c.Layers,
            Hidden = c.Dim,
            KvHeads = c.KvHeads,
            HeadDim = c.HeadDim,
            KvBytesPerElement = sizeof(float),
            StepOverheadSeconds = 0,
            ActivationReserveBytes = 0,
        };
    }

    /// <summary>The backend tokenizes prompts as UTF-8 bytes (<see cref="ByteTokenizer"/>): the model must have that vocabulary.</summary>
    private static void CheckByteVocabulary(LlamaModel model)
    {
        var v = model.Vocabulary;
        bool ok = v.Count >= ByteTokenizer.FirstByteId + 256;
        for (int b = 0; ok && b < 256; b++)
        {
            ok = v[ByteTokenizer.FirstByteId + b] == $"<0x{b:X2}>";
        }

        if (!ok)
        {
            throw new NotSupportedException(
                "the cpu backend tokenizes prompts as UTF-8 bytes and needs a vocabulary whose tokens 3..258 are <0x00>..<0xFF> " +
                "(the layout `Worker make-model` writes); this model's vocabulary is different");
        }
    }

    public void Dispose()
    {
        Executor.Dispose();
        Model.Dispose();
    }
}
