namespace Worker;

/// <summary>
/// Everything one reference worker needs: where it listens, which roofline profile and KV pool it models, how fast
/// it runs against the wall clock, and how it invents output. Bound from the worker's command line (src/Worker,
/// WorkerCommandLine) or built in code for in-process hosting (<see cref="WorkerHost.StartAsync"/>).
/// </summary>
public sealed class WorkerOptions
{
    /// <summary>Listen URL, e.g. <c>http://127.0.0.1:9001</c>; port 0 binds an ephemeral port.</summary>
    public string Url { get; init; } = "http://127.0.0.1:0";

    /// <summary>
    /// <c>roofline</c> (default): steps are timed by the profile, text is invented. <c>cpu</c>: a real Llama forward pass
    /// over <see cref="ModelPath"/> computes every step (see docs/worker.md, "CPU backend").
    /// </summary>
    public string Backend { get; init; } = "roofline";

    /// <summary>GGUF model file of the cpu backend (<c>Worker make-model</c> writes a seeded random one).</summary>
    public string? ModelPath { get; init; }

    /// <summary>Kernel threads of the cpu backend (default: the processor count).</summary>
    public int Threads { get; init; } = Environment.ProcessorCount;

    /// <summary>Roofline profile name (see <c>ModelProfiles.Names</c>).</summary>
    public string Profile { get; init; } = "h100-llama3-8b";

    /// <summary>KV blocks in the pool; 0 = the profile's default for the block size.</summary>
    public int KvBlocks { get; init; }

    /// <summary>Host-memory KV tier in blocks: 0 = none (default), −1 (<c>--host-kv-blocks auto</c>) = the profile's ratio × the HBM pool.</summary>
    public int HostKvBlocks { get; init; }

    /// <summary>
    /// Tokenizer of prompts (token counts, KV block hashes) of the roofline backend: <c>default</c>, <c>bytes</c>,
    /// <c>o200k_base</c>, <c>cl100k_base</c> or a <c>tokenizer.json</c> / <c>.tiktoken</c> file, resolved by
    /// <c>Tokenizers.Create</c> exactly as the gateway's <c>Gateway:Routing:Tokenizer</c> (set both alike). The cpu and
    /// gpu backends always read bytes, their models' vocabulary.
    /// </summary>
    public string Tokenizer { get; init; } = "default";

    /// <summary>Tokens per KV block.</summary>
    public int BlockSize { get; init; } = 16;

    /// <summary>Per-step token budget (chunked prefill + decode).</summary>
    public int MaxBatchTokens { get; init; } = 8192;

    /// <summary>Long-prefill cap per step (vLLM long_prefill_token_threshold); 0 = off.</summary>
    public int LongPrefillTokenThreshold { get; init; }

    /// <summary>Prefill tokens a step gives lower priorities after an urgent request (EngineOptions.LowPriorityPrefillTokens); 0 = off.</summary>
    public int LowPriorityPrefillTokens { get; init; } = Worker.Engine.EngineOptions.DefaultLowPriorityPrefillTokens;

    /// <summary>Most sequences decoding at once.</summary>
    public int MaxRunningSequences { get; init; } = 256;

    /// <summary>Context length (prompt + output) of the served model.</summary>
    public int MaxModelLength { get; init; } = 131072;

    /// <summary>
    /// Wall seconds per modelled second: 1 runs at the profile's real speed, 0.1 ten times faster, 0 as fast as the
    /// CPU allows (no sleeping at all).
    /// </summary>
    public double TimeScale { get; init; } = 1.0;

    /// <summary>Model id served on /v1/models; null = the profile's served model.</summary>
    public string? ModelName { get; init; }

    /// <summary>Default seed of generated text and output lengths (a request's <c>seed</c> overrides it).</summary>
    public long Seed { get; init; } = 1;

    /// <summary>Median of the log-normal output-length distribution used when a request has no max_tokens.</summary>
    public double OutputLengthMedian { get; init; } = 128;

    /// <summary>Sigma (of ln length) of the output-length distribution.</summary>
    public double OutputLengthSigma { get; init; } = 0.8;

    /// <summary>Upper cap of a drawn output length.</summary>
    public int OutputLengthMax { get; init; } = 1024;

    /// <summary>
    /// False (default): a request's max_tokens is its exact output length (load tests and trace replay set lengths so).
    /// True: max_tokens only caps the drawn length, as with a real model, so agents that always send a large max_tokens
    /// (Claude Code) get answers that end by themselves.
    /// </summary>
    public bool MaxTokensAsCap { get; init; }

    /// <summary>Tool results after which a chat turn with <c>tool_choice: auto</c> always answers in text (agent loops end by then).</summary>
    public int MaxToolResults { get; init; } = Generation.ToolCallRule.MaxToolResults;

    /// <summary>Default dimension of /v1/embeddings vectors (a request's <c>dimensions</c> overrides it).</summary>
    public int EmbeddingDimensions { get; init; } = 256;

    /// <summary>Capacity of the engine's KV event ring (consumers further behind must resync).</summary>
    public int KvEventCapacity { get; init; } = 100_000;

    /// <summary>Largest share of the KV pool that retention pins may hold.</summary>
    public double MaxPinnedFraction { get; init; } = 0.5;

    /// <summary>Largest request body accepted (413 beyond).</summary>
    public long MaxRequestBodyBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>
    /// How long a stopping worker keeps serving its in-flight requests before it cuts them (new requests get 503 as
    /// soon as it stops or is drained with <c>POST /worker/drain</c>). Kubernetes' terminationGracePeriodSeconds
    /// should exceed it.
    /// </summary>
    public TimeSpan DrainTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Clock of the engine loop's pacing (tests may inject one); defaults to the system clock.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Lowest ASP.NET Core log level written to the console (the worker never logs prompts).</summary>
    public Microsoft.Extensions.Logging.LogLevel LogLevel { get; init; } = Microsoft.Extensions.Logging.LogLevel.Warning;

    /// <summary>Every problem with these options (empty when valid).</summary>
    public List<string> Validate()
    {
        var errors = new List<string>();
        if (Backend is not ("roofline" or "cpu" or "gpu"))
        {
            errors.Add($"unknown backend '{Backend}'; known: roofline, cpu, gpu");
        }
        else if (Backend is "cpu" or "gpu" && (string.IsNullOrEmpty(ModelPath) || !File.Exists(ModelPath)))
        {
            errors.Add(string.IsNullOrEmpty(ModelPath)
                ? $"the {Backend} backend needs --model FILE.gguf (Worker make-model --out FILE.gguf writes one)"
                : $"model file '{ModelPath}' does not exist");
        }

        if (Threads < 1)
        {
            errors.Add("threads must be >= 1");
        }

        if (!Engine.ModelProfiles.Names.Contains(Profile))
        {
            errors.Add($"unknown profile '{Profile}'; known: {string.Join(", ", Engine.ModelProfiles.Names)}");
        }

        if (Backend is "cpu" or "gpu" && Tokenizer is not ("default" or "bytes"))
        {
            errors.Add($"the {Backend} backend tokenizes prompts as bytes (its model's vocabulary): leave --tokenizer at default");
        }
        else if (!(Tokenizer is "default" or "bytes" || Llm.Prompt.Tokenization.TiktokenEncoding.IsName(Tokenizer)
            || (Tokenizer.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || Tokenizer.EndsWith(".tiktoken", StringComparison.OrdinalIgnoreCase)) && File.Exists(Tokenizer)))
        {
            errors.Add($"unknown tokenizer '{Tokenizer}'; known: default, bytes, o200k_base, cl100k_base, or an existing .json/.tiktoken file");
        }

        if (BlockSize is < 1 or > Llm.Prompt.Hashing.BlockHasher.MaxBlockSize)
        {
            errors.Add($"block size must be in [1, {Llm.Prompt.Hashing.BlockHasher.MaxBlockSize}]");
        }

        if (KvBlocks < 0)
        {
            errors.Add("kv blocks must be >= 0");
        }

        if (HostKvBlocks < -1)
        {
            errors.Add("host kv blocks must be >= 0 or auto");
        }
        else if (HostKvBlocks != 0 && Backend == "gpu")
        {
            errors.Add("--host-kv-blocks needs the roofline or cpu backend (the gpu backend keeps no host copy of its K/V)");
        }

        if (!(TimeScale >= 0) || double.IsInfinity(TimeScale))
        {
            errors.Add("time scale must be a finite number >= 0");
        }

        if (ModelName is { Length: 0 })
        {
            errors.Add("model name must not be empty");
        }

        if (OutputLengthMax < 1 || OutputLengthMedian < 1)
        {
            errors.Add("output length median and max must be >= 1");
        }

        if (KvEventCapacity < 1)
        {
            errors.Add("kv event capacity must be >= 1");
        }

        if (!(MaxPinnedFraction >= 0 && MaxPinnedFraction <= 1))
        {
            errors.Add("max pinned fraction must be in [0, 1]");
        }

        if (EmbeddingDimensions < 1)
        {
            errors.Add("embedding dimensions must be >= 1");
        }

        return errors;
    }
}
