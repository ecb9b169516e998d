using System.CommandLine;
using Cli;
using Microsoft.Extensions.Logging;
using Worker.Backends;

namespace Worker;

/// <summary>
/// The worker's command line (docs/worker-protocol.md, "Command line"): the serve options bound to
/// <see cref="WorkerOptions"/> and the <c>make-model</c> verb. Every error is reported at once (<see cref="CliApp"/>).
/// </summary>
internal sealed class WorkerCommandLine
{
    private const string DefaultUrl = "http://127.0.0.1:9001";

    // The defaults of every option but --urls (in-process hosts bind an ephemeral port, the command line 9001).
    private static readonly WorkerOptions Defaults = new();

    private readonly Option<string> _urls = CliOptions.Create("--urls", "listen URL (port 0 = ephemeral)", DefaultUrl, "--url");
    private readonly Option<string> _backend = CliOptions.Create("--backend", "roofline (modelled timing, invented text), cpu (real Llama forward pass on CPU threads) or gpu (the same forward pass as ILGPU kernels on the first CUDA device)", Defaults.Backend);
    private readonly Option<string?> _model = CliOptions.OptionalText("--model", "GGUF model of the cpu/gpu backend (byte-level vocabulary; see `Worker make-model --help`)", "none");
    private readonly Option<int> _threads = CliOptions.Create("--threads", "kernel threads of the cpu backend (the processor count)", Defaults.Threads);
    private readonly Option<string> _profile = CliOptions.Create("--profile", "roofline profile: " + string.Join(", ", Engine.ModelProfiles.Names), Defaults.Profile);
    private readonly Option<int> _kvBlocks = CliOptions.Create("--kv-blocks", "KV pool size in blocks (0 = from the profile's free HBM; cpu: 64k tokens, at most 1 GiB)", Defaults.KvBlocks);
    private readonly Option<string> _hostKvBlocks = CliOptions.Create("--host-kv-blocks", "host-memory KV tier in blocks: evicted blocks are demoted there and reloaded over PCIe (0 = none; auto = 2x the HBM pool, SGLang HiCache's default ratio; roofline and cpu backends)", "0");
    private readonly Option<string> _tokenizer = CliOptions.Create("--tokenizer", "prompt tokenizer of the roofline backend, as the gateway's Routing:Tokenizer: default, bytes, o200k_base, cl100k_base or a tokenizer.json / .tiktoken file", Defaults.Tokenizer);
    private readonly Option<int> _blockSize = CliOptions.Create("--block-size", "tokens per KV block", Defaults.BlockSize);
    private readonly Option<double> _timeScale = CliOptions.Create("--time-scale", "wall seconds per modelled second (0.1 = 10x faster; 0 = no sleeping)", Defaults.TimeScale);
    private readonly Option<string?> _modelName = CliOptions.OptionalText("--model-name", "model id served on /v1/models", "the profile's served model");
    private readonly Option<long> _seed = CliOptions.Create("--seed", "seed of generated text and output lengths (a request's seed overrides it)", Defaults.Seed);
    private readonly Option<int> _maxBatchTokens = CliOptions.Create("--max-batch-tokens", "per-step token budget (chunked prefill + decode)", Defaults.MaxBatchTokens);
    private readonly Option<int> _longPrefill = CliOptions.Create("--long-prefill-threshold", "cap a prefill's chunk at N tokens while others want the step (0 = off)", Defaults.LongPrefillTokenThreshold);
    private readonly Option<int> _lowPriorityPrefill = CliOptions.Create("--low-priority-prefill", "for 10 s after a request with x-request-priority above 0, steps give lower priorities at most N prefill tokens together, so an urgent arrival waits a short step (0 = off)", Defaults.LowPriorityPrefillTokens);
    private readonly Option<int> _maxRunning = CliOptions.Create("--max-running", "most sequences running at once", Defaults.MaxRunningSequences);
    private readonly Option<int> _maxModelLen = CliOptions.Create("--max-model-len", "context length (prompt + output) of the served model", Defaults.MaxModelLength);
    private readonly Option<double> _outputMedian = CliOptions.Create("--output-median", "median of the log-normal output length when max_tokens is absent", Defaults.OutputLengthMedian);
    private readonly Option<double> _outputSigma = CliOptions.Create("--output-sigma", "sigma (of ln length) of that distribution", Defaults.OutputLengthSigma);
    private readonly Option<int> _outputMax = CliOptions.Create("--output-max", "cap of a drawn output length", Defaults.OutputLengthMax);
    private readonly Option<bool> _maxTokensAsCap = CliOptions.Create("--max-tokens-as-cap", "true: max_tokens only caps the drawn output length, as a real model does; false: it is the exact length", Defaults.MaxTokensAsCap);
    private readonly Option<int> _maxToolResults = CliOptions.Create("--max-tool-results", "tool results after which a tool_choice: auto chat turn is answered in text", Defaults.MaxToolResults);
    private readonly Option<int> _embeddingDims = CliOptions.Create("--embedding-dims", "default dimension of /v1/embeddings vectors", Defaults.EmbeddingDimensions);
    private readonly Option<long> _maxBodyBytes = CliOptions.Create("--max-body-bytes", "largest request body accepted (413 beyond)", Defaults.MaxRequestBodyBytes);
    private readonly Option<int> _kvEventCapacity = CliOptions.Create("--kv-event-capacity", "capacity of the KV event ring (consumers further behind must resync)", Defaults.KvEventCapacity);
    private readonly Option<double> _maxPinnedFraction = CliOptions.Create("--max-pinned-fraction", "largest share of the KV pool retention pins may hold", Defaults.MaxPinnedFraction);
    private readonly Option<double> _drainTimeout = CliOptions.Create("--drain-timeout", "seconds in-flight requests may keep running once the worker stops; new requests get 503 once it stops or is drained (POST /worker/drain)", Defaults.DrainTimeout.TotalSeconds);
    private readonly Option<LogLevel> _logLevel = CliOptions.Create("--log-level", "lowest log level written to the console (prompts are never logged)", Defaults.LogLevel);

    private WorkerCommandLine(Func<WorkerOptions, int> serve, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("Reference LLM worker (OpenAI API + worker protocol over a modelled engine).");
        root.AddOptions(
            _urls, _backend, _model, _threads, _profile, _kvBlocks, _hostKvBlocks, _tokenizer, _blockSize, _timeScale, _modelName,
            _seed, _maxBatchTokens, _longPrefill, _lowPriorityPrefill, _maxRunning, _maxModelLen, _outputMedian, _outputSigma,
            _outputMax, _maxTokensAsCap, _maxToolResults, _embeddingDims, _maxBodyBytes, _kvEventCapacity, _maxPinnedFraction,
            _drainTimeout, _logLevel);
        App = new CliApp(root);
        App.Handle(root, Bind, serve);
        MakeModelCommand.AddTo(App, stdout, stderr);
    }

    public CliApp App { get; }

    /// <summary>The worker's command line; <paramref name="serve"/> runs a valid serve command line.</summary>
    public static WorkerCommandLine Create(Func<WorkerOptions, int> serve, TextWriter? stdout = null, TextWriter? stderr = null) =>
        new(serve, stdout ?? Console.Out, stderr ?? Console.Error);

    /// <summary>
    /// Binds a serve command line without serving: the options, and every problem (empty when valid); <paramref name="help"/>
    /// when <c>--help</c> was asked for.
    /// </summary>
    public static WorkerOptions Parse(IReadOnlyList<string> args, out List<string> errors, out bool help)
    {
        var cl = Create(_ => 0);
        var parse = cl.App.Root.Parse(args);
        help = parse.Action is System.CommandLine.Help.HelpAction;
        var input = new CliInput(parse);
        var options = cl.Bind(input);
        errors = [.. input.Errors];
        return options;
    }

    private WorkerOptions Bind(CliInput input)
    {
        string url = input.Get(_urls) ?? DefaultUrl;
        if (url.Contains(';', StringComparison.Ordinal))
        {
            url = url.Split(';')[0]; // ASP.NET Core's list form: the first URL
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            input.Error($"--urls must be an http URL such as {DefaultUrl}, got '{url}'");
        }

        int hostKvBlocks = 0;
        string hostText = input.Get(_hostKvBlocks) ?? "0";
        if (hostText == "auto")
        {
            hostKvBlocks = -1;
        }
        else if (!int.TryParse(hostText, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out hostKvBlocks)
            || hostKvBlocks is < 0 or > 1_000_000_000)
        {
            input.Error($"--host-kv-blocks must be a number of blocks in [0, 1000000000] or auto, got '{hostText}'");
            hostKvBlocks = 0;
        }

        var options = new WorkerOptions
        {
            Url = url,
            Backend = input.Get(_backend),
            ModelPath = input.GetGiven(_model),
            Threads = input.InRange(_threads, 1, 1024),
            Profile = input.Get(_profile),
            KvBlocks = input.InRange(_kvBlocks, 0, 100_000_000),
            HostKvBlocks = hostKvBlocks,
            Tokenizer = input.Get(_tokenizer),
            BlockSize = input.InRange(_blockSize, 1, 1024),
            TimeScale = input.InRange(_timeScale, 0, 1000),
            ModelName = input.GetGiven(_modelName),
            Seed = input.Get(_seed),
            MaxBatchTokens = input.InRange(_maxBatchTokens, 1, 10_000_000),
            LongPrefillTokenThreshold = input.InRange(_longPrefill, 0, 10_000_000),
            LowPriorityPrefillTokens = input.InRange(_lowPriorityPrefill, 0, 10_000_000),
            MaxRunningSequences = input.InRange(_maxRunning, 1, 100_000),
            MaxModelLength = input.InRange(_maxModelLen, 16, 100_000_000),
            OutputLengthMedian = input.InRange(_outputMedian, 1, 1_000_000),
            OutputLengthSigma = input.InRange(_outputSigma, 0, 10),
            OutputLengthMax = input.InRange(_outputMax, 1, 10_000_000),
            MaxTokensAsCap = input.Get(_maxTokensAsCap),
            MaxToolResults = input.InRange(_maxToolResults, 0, 1_000_000),
            EmbeddingDimensions = input.InRange(_embeddingDims, 1, 65536),
            MaxRequestBodyBytes = input.InRange(_maxBodyBytes, 1024, 1L << 34),
            KvEventCapacity = input.InRange(_kvEventCapacity, 1, 100_000_000),
            MaxPinnedFraction = input.InRange(_maxPinnedFraction, 0, 1),
            DrainTimeout = TimeSpan.FromSeconds(input.InRange(_drainTimeout, 0, 3600)),
            LogLevel = input.Get(_logLevel),
        };
        foreach (var e in options.Validate())
        {
            input.Error(e);
        }

        return options;
    }
}
