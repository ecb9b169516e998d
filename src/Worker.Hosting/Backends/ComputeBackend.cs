using Llm.Prompt.Tokenization;
using Worker.Cpu;
using Worker.Engine;
using Worker.Gpu;

namespace Worker.Backends;

/// <summary>
/// Everything the cpu or gpu backend adds to a worker: the loaded GGUF model, the <see cref="CpuStepExecutor"/> driving
/// a forward runner (<see cref="LlamaRunner"/> on CPU threads, or <see cref="GpuRunner"/> on the first CUDA device) over a
/// K/V pool of the engine's shape, and a <see cref="ModelProfile"/> calibrated at startup (one timed prefill and decode)
/// so that /worker/state reports this machine's prefill tokens/s and decode step time to routers.
/// Knobs (from <see cref="WorkerOptions"/>): model path, threads, KV blocks (0 = 64k tokens, at most 1 GiB of K/V),
/// block size, max batch tokens, max model length (capped by the model's context length).
/// </summary>
internal sealed class ComputeBackend : IDisposable
{
    /// <summary>Default K/V budget when --kv-blocks is 0.</summary>
    public const long DefaultKvBytes = 1L << 30;

    /// <summary>Default K/V capacity in tokens when --kv-blocks is 0 (before the byte budget).</summary>
    public const int DefaultKvTokens = 65536;

    private readonly GpuDevice? _device;

    private ComputeBackend(string name, LlamaModel model, GpuDevice? device, CpuStepExecutor executor, ModelProfile profile, int kvBlocks, int maxModelLength)
    {
        Name = name;
        _device = device;
        Model = model;
        Executor = executor;
        Profile = profile;
        KvBlocks = kvBlocks;
        MaxModelLength = maxModelLength;
    }

    /// <summary>"cpu" or "gpu".</summary>
    public string Name { get; }

    public LlamaModel Model { get; }

    public CpuStepExecutor Executor { get; }

    public ModelProfile Profile { get; }

    public int KvBlocks { get; }

    public int MaxModelLength { get; }

    /// <summary>
    /// Loads the model named by <paramref name="options"/> for --backend cpu or gpu; throws with a clear message when it
    /// cannot serve (for gpu: <see cref="NotSupportedException"/> when the machine has no CUDA device).
    /// </summary>
    public static ComputeBackend Load(WorkerOptions options, string servedModel)
    {
        bool gpu = options.Backend == "gpu";
        var device = gpu ? GpuDevice.OpenCuda() : null;
        LlamaModel model;
        try
        {
            model = LlamaModel.Load(options.ModelPath!);
        }
        catch
        {
            device?.Dispose();
            throw;
        }

        try
        {
            var c = model.Config;
            CheckByteVocabulary(model);
            long bytesPerToken = 2L * c.Layers * c.KvDim * sizeof(float);
            int kvBlocks = options.KvBlocks > 0
                ? options.KvBlocks
                : (int)Math.Max(1, Math.Min(DefaultKvTokens, DefaultKvBytes / bytesPerToken) / options.BlockSize);
            int maxLen = Math.Min(options.MaxModelLength, c.MaxContext);
            IForwardRunner runner = device is null
                ? new LlamaRunner(model, new KvPool(c, kvBlocks, options.BlockSize), options.MaxBatchTokens, options.Threads)
                : new GpuRunner(device.Accelerator, model, kvBlocks, options.BlockSize, options.MaxBatchTokens);
            var executor = new CpuStepExecutor(model, runner);
            var (calibrated, prefill, decode) = executor.Calibrate(256);
            string where = device is null ? $"CPU, {options.Threads} threads" : $"GPU {device.Name}";
            return new ComputeBackend(options.Backend, model, device, executor, CalibratedProfile(model, servedModel, options.Backend, where, calibrated, prefill, decode), kvBlocks, maxLen);
        }
        catch
        {
            model.Dispose();
            device?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A roofline whose compute rate reproduces the measured prefill and whose memory rate reproduces the measured decode
    /// step: MFU and bandwidth efficiency are 1 and the peaks are what this machine achieved.
    /// </summary>
    internal static ModelProfile CalibratedProfile(LlamaModel model, string servedModel, string backend, string where, int prefillTokens, double prefillSeconds, double decodeSeconds)
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
            Name = backend,
            ServedModel = servedModel,
            Gpu = $"{where} ({model.WeightType} weights)",
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
                "the cpu and gpu backends tokenize prompts as UTF-8 bytes and needs a vocabulary whose tokens 3..258 are <0x00>..<0xFF> " +
                "(the layout `Worker make-model` writes); this model's vocabulary is different");
        }
    }

    public void Dispose()
    {
        Executor.Dispose();
        Model.Dispose();
        _device?.Dispose();
    }
}
