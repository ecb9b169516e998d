using System.Globalization;
using Worker.Engine;

namespace Gateway.Benchmarks;

/// <summary>Prints what the shipped roofline profiles predict (TTFT, ITL, prefill throughput, KV capacity).</summary>
internal static class ProfileTable
{
    public static void Print(TextWriter w)
    {
        var ci = CultureInfo.InvariantCulture;
        foreach (var name in ModelProfiles.Names)
        {
            var p = ModelProfiles.Get(name);
            w.WriteLine(string.Create(ci, $"## {name} ({p.Gpu}, {p.Parameters / 1e9:0.##}B params, TP={p.TensorParallel})"));
            w.WriteLine(string.Create(ci, $"weights/GPU {p.WeightBytesPerGpu / 1e9:0.00} GB, KV/token {p.KvBytesPerToken} B (per GPU {p.KvBytesPerTokenPerGpu:0}), default KV blocks (16) {p.DefaultKvBlocks(16)} = {p.DefaultKvBlocks(16) * 16L} tokens"));
            w.WriteLine(string.Create(ci, $"nominal prefill {p.PrefillTokensPerSecond:0} tok/s"));
            w.WriteLine("| prompt tokens | TTFT cold (ms) | TTFT, all but last block cached (ms) |");
            w.WriteLine("|---:|---:|---:|");
            foreach (int n in new[] { 128, 512, 2048, 8192, 32768 })
            {
                w.WriteLine(string.Create(ci, $"| {n} | {Ttft(p, n, 0):0.0} | {Ttft(p, n, n - 16):0.0} |"));
            }

            w.WriteLine("| decode batch | context/seq | ITL (ms) | output tok/s |");
            w.WriteLine("|---:|---:|---:|---:|");
            foreach (var (b, ctx) in new[] { (1, 1024), (8, 1024), (32, 2048), (64, 2048), (128, 2048), (256, 1024) })
            {
                double itl = p.DecodeStepSeconds(b, (long)b * ctx);
                w.WriteLine(string.Create(ci, $"| {b} | {ctx} | {itl * 1e3:0.00} | {b / itl:0} |"));
            }

            w.WriteLine();
        }

        // Published latency tests, replayed through the engine itself (scheduler + roofline).
        var h200 = ModelProfiles.Get(ModelProfiles.H200Llama3_8B);
        var h100 = ModelProfiles.Get(ModelProfiles.H100Llama3_8B);
        var seventyH200 = ModelProfiles.Get(ModelProfiles.H100Llama3_70B_Tp4) with
        {
            Name = "h200-llama3-70b-tp4 (variant)", HbmBytesPerSecond = 4.8e12, HbmBytesPerGpu = 143_771L * 1024 * 1024,
        };
        var llama2On100 = h100 with { Name = "h100-llama2-7b (variant)", Parameters = 6.74e9, KvHeads = 32 };
        w.WriteLine("## published scenarios replayed through LlmEngine");
        w.WriteLine("| scenario | profile | model E2E (ms) | model TTFT (ms) | model mean ITL (ms) |");
        w.WriteLine("|---|---|---:|---:|---:|");
        Scenario(w, "vLLM CI latency test: batch 8, in 32, out 128", h200, 8, 32, 128);
        Scenario(w, "vLLM CI latency test: batch 8, in 32, out 128", seventyH200, 8, 32, 128);
        Scenario(w, "NeMo/TRT-LLM Llama-2-7B: batch 1, in 128, out 20", llama2On100, 1, 128, 20);
        Scenario(w, "batch 1, in 2048, out 128", h100, 1, 2048, 128);
        Scenario(w, "batch 1, in 2048, out 128", ModelProfiles.Get(ModelProfiles.H100Llama3_70B_Tp4), 1, 2048, 128);
    }

    private static void Scenario(TextWriter w, string title, ModelProfile p, int batch, int input, int output)
    {
        var engine = new LlmEngine(new EngineOptions { Profile = p }, TimeProvider.System);
        for (int i = 0; i < batch; i++)
        {
            if (!engine.Submit(new EngineRequest { Id = "r" + i, PromptTokens = input, OutputTokens = output, BlockHashes = [] }, out var error))
            {
                throw new InvalidOperationException(error);
            }
        }

        double clock = 0, ttft = -1;
        double lastToken = 0;
        while (engine.HasWork)
        {
            var step = engine.Step();
            clock += step.Duration.TotalSeconds;
            foreach (var e in step.Events)
            {
                if (e.Kind == SequenceEventKind.FirstToken && ttft < 0)
                {
                    ttft = clock;
                }

                if (e.Kind != SequenceEventKind.Finished)
                {
                    lastToken = clock;
                }
            }
        }

        double itl = (lastToken - ttft) / (output - 1);
        w.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {title} | {p.Name} | {clock * 1e3:0.0} | {ttft * 1e3:0.0} | {itl * 1e3:0.00} |"));
    }

    /// <summary>TTFT of a lone request: chunked prefill with the default 8,192-token budget.</summary>
    private static double Ttft(ModelProfile p, int prompt, int cached)
    {
        double t = 0;
        int done = cached;
        while (done < prompt)
        {
            int n = Math.Min(8192, prompt - done);
            t += p.PrefillSeconds(n, done);
            done += n;
        }

        return t * 1e3;
    }
}
