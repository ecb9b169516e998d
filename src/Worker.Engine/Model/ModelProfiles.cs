namespace Worker.Engine;

/// <summary>
/// The shipped roofline profiles. Constants and their sources are listed in docs/worker.md:
/// GPU datasheets (NVIDIA H100 SXM5, H200 SXM), model configs (Meta Llama 3 config.json), and efficiencies
/// calibrated against published vLLM/SGLang latency figures.
/// </summary>
public static class ModelProfiles
{
    /// <summary>H100 SXM5 80 GB: 989 TFLOP/s dense BF16, 3.35 TB/s HBM3; 81,559 MiB reported by the driver.</summary>
    private const double H100Flops = 989e12;
    private const double H100Bandwidth = 3.35e12;
    private const long H100Hbm = 81_559L * 1024 * 1024;

    /// <summary>H200 SXM 141 GB: same compute die as H100, 4.8 TB/s HBM3e; 143,771 MiB reported by the driver.</summary>
    private const double H200Flops = 989e12;
    private const double H200Bandwidth = 4.8e12;
    private const long H200Hbm = 143_771L * 1024 * 1024;

    /// <summary>Prefill model-FLOPs utilisation of vLLM/SGLang on Hopper (BF16 GEMMs + FlashAttention, 1–8k-token chunks): puts
    /// Llama-3-8B prefill on one H100 at ~20k tokens/s. The least certain constant; see docs/worker.md.</summary>
    private const double PrefillMfu = 0.35;

    /// <summary>Achieved fraction of peak HBM bandwidth for decode GEMV + paged attention.</summary>
    private const double DecodeHbmEfficiency = 0.75;

    /// <summary>Per-step scheduler/sampling/launch overhead with CUDA graphs, calibrated so batch-8 decode on H200 lands near vLLM's CI latency test.</summary>
    private const double StepOverhead = 0.0015;

    public const string H100Llama3_8B = "h100-llama3-8b";
    public const string H200Llama3_8B = "h200-llama3-8b";
    public const string H100Llama3_70B_Tp4 = "h100-llama3-70b-tp4";

    private static readonly ModelProfile[] All =
    [
        new ModelProfile
        {
            Name = H100Llama3_8B, ServedModel = "llama3-8b", Gpu = "NVIDIA H100 SXM5 80GB",
            PeakFlopsPerGpu = H100Flops, HbmBytesPerSecond = H100Bandwidth, HbmBytesPerGpu = H100Hbm,
            Parameters = 8.03e9, Layers = 32, Hidden = 4096, KvHeads = 8, HeadDim = 128,
            Mfu = PrefillMfu, HbmEfficiency = DecodeHbmEfficiency, StepOverheadSeconds = StepOverhead,
            ActivationReserveBytes = 4L << 30,
        },
        new ModelProfile
        {
            Name = H200Llama3_8B, ServedModel = "llama3-8b", Gpu = "NVIDIA H200 SXM 141GB",
            PeakFlopsPerGpu = H200Flops, HbmBytesPerSecond = H200Bandwidth, HbmBytesPerGpu = H200Hbm,
            Parameters = 8.03e9, Layers = 32, Hidden = 4096, KvHeads = 8, HeadDim = 128,
            Mfu = PrefillMfu, HbmEfficiency = DecodeHbmEfficiency, StepOverheadSeconds = StepOverhead,
            ActivationReserveBytes = 4L << 30,
        },
        new ModelProfile
        {
            Name = H100Llama3_70B_Tp4, ServedModel = "llama3-70b", Gpu = "4x NVIDIA H100 SXM5 80GB (NVLink, TP=4)",
            PeakFlopsPerGpu = H100Flops, HbmBytesPerSecond = H100Bandwidth, HbmBytesPerGpu = H100Hbm,
            TensorParallel = 4,
            Parameters = 70.6e9, Layers = 80, Hidden = 8192, KvHeads = 8, HeadDim = 128,
            Mfu = PrefillMfu, HbmEfficiency = DecodeHbmEfficiency, StepOverheadSeconds = StepOverhead,
            AllReduceLatencySeconds = 15e-6, InterconnectBytesPerSecond = 450e9,
            ActivationReserveBytes = 4L << 30,
        },
    ];

    /// <summary>Names of the shipped profiles.</summary>
    public static IReadOnlyList<string> Names { get; } = Array.ConvertAll(All, p => p.Name);

    /// <summary>The profile with this name (case-insensitive).</summary>
    /// <exception cref="ArgumentException">Unknown name; the message lists the known ones.</exception>
    public static ModelProfile Get(string name)
    {
        if (TryGet(name, out var profile))
        {
            return profile;
        }

        throw new ArgumentException($"unknown profile '{name}'; known: {string.Join(", ", Names)}", nameof(name));
    }

    /// <summary>Looks a profile up by name (case-insensitive).</summary>
    public static bool TryGet(string? name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ModelProfile? profile)
    {
        foreach (var p in All)
        {
            if (string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                profile = p;
                return true;
            }
        }

        profile = null;
        return false;
    }
}
