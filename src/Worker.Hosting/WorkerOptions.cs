using System.Globalization;

namespace Worker;

/// <summary>
/// Everything one reference worker needs: where it listens, which roofline profile and KV pool it models, how fast
/// it runs against the wall clock, and how it invents output. Parsed from the command line by <see cref="Parse"/>
/// or built in code for in-process hosting (<see cref="WorkerHost.StartAsync"/>).
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

    /// <summary>Usage text of the command line.</summary>
    public const string Usage =
        """
        Reference LLM worker (OpenAI API + worker protocol over a modelled engine).
        usage: Worker [--urls URL] [--backend roofline|cpu|gpu] [--model FILE.gguf] [--threads N] [--profile NAME] [--kv-blocks N] [--host-kv-blocks N|auto] [--tokenizer NAME|FILE] [--block-size N] [--time-scale X]
                      [--model-name ID] [--seed N] [--max-batch-tokens N] [--long-prefill-threshold N] [--low-priority-prefill N] [--max-running N] [--max-model-len N]
                      [--output-median N] [--output-sigma X] [--output-max N] [--embedding-dims N]
                      [--max-body-bytes N] [--kv-event-capacity N] [--max-pinned-fraction X]
                      [--drain-timeout SECONDS] [--log-level Warning|Information|Debug]
          --urls            listen URL (default http://127.0.0.1:9001; port 0 = ephemeral)
          --backend         roofline (modelled timing, invented text; default), cpu (real Llama forward pass on CPU
                            threads) or gpu (the same forward pass as ILGPU kernels on the first CUDA device)
          --model           GGUF model of the cpu/gpu backend (byte-level vocabulary; see `Worker make-model --help`)
          --threads         kernel threads of the cpu backend (default: processor count)
          --profile         roofline profile: h100-llama3-8b, h200-llama3-8b, h100-llama3-70b-tp4
          --kv-blocks       KV pool size in blocks (default: from the profile's free HBM; cpu: 64k tokens, at most 1 GiB)
          --host-kv-blocks  host-memory KV tier in blocks: evicted blocks are demoted there and reloaded over PCIe
                            (0 = none, default; auto = 2x the HBM pool, SGLang HiCache's default ratio; roofline backend only)
          --tokenizer       prompt tokenizer of the roofline backend, as the gateway's Routing:Tokenizer: default,
                            bytes, o200k_base, cl100k_base or a tokenizer.json / .tiktoken file (default: default)
          --block-size      tokens per KV block (default 16)
          --time-scale      wall seconds per modelled second (default 1; 0.1 = 10x faster; 0 = no sleeping)
          --model-name      model id served (default: the profile's)
          --seed            seed of generated text and output lengths (default 1)
          --max-batch-tokens per-step token budget (default 8192)
          --long-prefill-threshold  cap a prefill's chunk at N tokens while others want the step (0 = off, default)
          --low-priority-prefill  for 10 s after a request with x-request-priority above 0, steps give lower
                            priorities at most N prefill tokens together, so an urgent arrival waits a short step
                            (default 2048; 0 = off)
          --output-median/--output-sigma/--output-max  log-normal output length when max_tokens is absent
                            (default 128 / 0.8 / 1024)
          --drain-timeout   seconds in-flight requests may keep running once the worker stops (default 30);
                            new requests get 503 once it stops or is drained (POST /worker/drain)
        """;

    /// <summary>
    /// Parses <c>--name value</c> / <c>--name=value</c> arguments. Every problem is collected (not only the first);
    /// <paramref name="errors"/> is empty on success. <c>--help</c> sets <paramref name="help"/>.
    /// </summary>
    public static WorkerOptions Parse(IReadOnlyList<string> args, out List<string> errors, out bool help)
    {
        errors = [];
        help = false;
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            if (a is "--help" or "-h" or "-?")
            {
                help = true;
                continue;
            }

            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
            {
                errors.Add($"unexpected argument '{a}'");
                continue;
            }

            string name;
            string? value;
            int eq = a.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                name = a[2..eq];
                value = a[(eq + 1)..];
            }
            else
            {
                name = a[2..];
                value = i + 1 < args.Count ? args[++i] : null;
            }

            if (value is null)
            {
                errors.Add($"--{name} needs a value");
                continue;
            }

            values[name] = value;
        }

        var known = new HashSet<string>(StringComparer.Ordinal)
        {
            "urls", "url", "profile", "kv-blocks", "host-kv-blocks", "block-size", "tokenizer", "time-scale", "model-name", "seed", "max-batch-tokens", "long-prefill-threshold", "low-priority-prefill",
            "max-running", "max-model-len", "output-median", "output-sigma", "output-max", "embedding-dims", "max-body-bytes",
            "log-level", "kv-event-capacity", "max-pinned-fraction", "drain-timeout", "backend", "model", "threads",
        };
        foreach (var k in values.Keys)
        {
            if (!known.Contains(k))
            {
                errors.Add($"unknown option --{k}");
            }
        }

        var errs = errors;
        int Int(string name, int def, int min, int max) => Number(name, def, min, max, NumberStyles.Integer, "an integer");
        long Long(string name, long def, long min, long max) => Number(name, def, min, max, NumberStyles.Integer, "an integer");
        double Double(string name, double def, double min, double max) => Number(name, def, min, max, NumberStyles.Float, "a number");

        T Number<T>(string name, T def, T min, T max, NumberStyles style, string what)
            where T : System.Numerics.INumber<T>
        {
            if (!values.TryGetValue(name, out var s))
            {
                return def;
            }

            if (!T.TryParse(s, style, CultureInfo.InvariantCulture, out T? v) || !(v >= min && v <= max))
            {
                errs.Add($"--{name} must be {what} in [{min}, {max}], got '{s}'");
                return def;
            }

            return v;
        }

        string url = values.GetValueOrDefault("urls") ?? values.GetValueOrDefault("url") ?? "http://127.0.0.1:9001";
        if (url.Contains(';', StringComparison.Ordinal))
        {
            url = url.Split(';')[0];
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            errors.Add($"--urls must be an http URL such as http://127.0.0.1:9001, got '{url}'");
        }

        var logLevel = Microsoft.Extensions.Logging.LogLevel.Warning;
        if (values.TryGetValue("log-level", out var ll) && !Enum.TryParse(ll, ignoreCase: true, out logLevel))
        {
            errors.Add($"--log-level must be one of Trace, Debug, Information, Warning, Error, got '{ll}'");
        }

        var options = new WorkerOptions
        {
            Url = url,
            Backend = values.GetValueOrDefault("backend") ?? "roofline",
            ModelPath = values.GetValueOrDefault("model"),
            Threads = Int("threads", Environment.ProcessorCount, 1, 1024),
            Profile = values.GetValueOrDefault("profile") ?? "h100-llama3-8b",
            KvBlocks = Int("kv-blocks", 0, 0, 100_000_000),
            HostKvBlocks = values.GetValueOrDefault("host-kv-blocks") == "auto" ? -1 : Int("host-kv-blocks", 0, 0, 1_000_000_000),
            Tokenizer = values.GetValueOrDefault("tokenizer") ?? "default",
            BlockSize = Int("block-size", 16, 1, 1024),
            TimeScale = Double("time-scale", 1.0, 0, 1000),
            ModelName = values.GetValueOrDefault("model-name"),
            Seed = Long("seed", 1, long.MinValue, long.MaxValue),
            MaxBatchTokens = Int("max-batch-tokens", 8192, 1, 10_000_000),
            LongPrefillTokenThreshold = Int("long-prefill-threshold", 0, 0, 10_000_000),
            LowPriorityPrefillTokens = Int("low-priority-prefill", Worker.Engine.EngineOptions.DefaultLowPriorityPrefillTokens, 0, 10_000_000),
            MaxRunningSequences = Int("max-running", 256, 1, 100_000),
            MaxModelLength = Int("max-model-len", 131072, 16, 100_000_000),
            OutputLengthMedian = Double("output-median", 128, 1, 1_000_000),
            OutputLengthSigma = Double("output-sigma", 0.8, 0, 10),
            OutputLengthMax = Int("output-max", 1024, 1, 10_000_000),
            MaxTokensAsCap = values.GetValueOrDefault("max-tokens-as-cap") is "true" or "1",
            MaxToolResults = Int("max-tool-results", Generation.ToolCallRule.MaxToolResults, 0, 1_000_000),
            EmbeddingDimensions = Int("embedding-dims", 256, 1, 65536),
            MaxRequestBodyBytes = Long("max-body-bytes", 16 * 1024 * 1024, 1024, 1L << 34),
            KvEventCapacity = Int("kv-event-capacity", 100_000, 1, 100_000_000),
            MaxPinnedFraction = Double("max-pinned-fraction", 0.5, 0, 1),
            DrainTimeout = TimeSpan.FromSeconds(Double("drain-timeout", 30, 0, 3600)),
            LogLevel = logLevel,
        };
        errors.AddRange(options.Validate());
        return options;
    }

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
