using Llm.Prompt.Tokenization;
using Worker.Backends;
using Worker.Engine;
using Worker.Generation;

namespace Worker.Hosting;

/// <summary>Per-worker shared state the HTTP handlers use (one per <see cref="WorkerHost"/>; several per process).</summary>
internal sealed class WorkerContext
{
    private readonly string _idTag;
    private long _nextId;

    public WorkerContext(WorkerOptions options, ModelProfile profile, EngineLoop loop, ComputeBackend? cpu = null, int? maxModelLength = null)
    {
        Options = options;
        Profile = profile;
        Loop = loop;
        Compute = cpu;
        MaxModelLength = maxModelLength ?? options.MaxModelLength;
        ServedModel = options.ModelName ?? profile.ServedModel;
        Planner = new OutputPlanner(options);
        // A compute backend's model reads bytes (its vocabulary); a modelled worker tokenizes as configured, as the gateway does.
        PromptTokenizer = cpu is not null ? ByteTokenizer.Instance : Tokenizers.Create(options.Tokenizer);
        Span<byte> tag = stackalloc byte[4];
        System.Security.Cryptography.RandomNumberGenerator.Fill(tag);
        _idTag = Convert.ToHexStringLower(tag);
        Created = options.TimeProvider.GetUtcNow().ToUnixTimeSeconds();
    }

    public WorkerOptions Options { get; }

    /// <summary>The tokenizer of prompts: their token counts and KV block hashes.</summary>
    public ITokenizer PromptTokenizer { get; }

    /// <summary>Cancelled when the host starts stopping: KV event streams end at once instead of holding shutdown.</summary>
    public CancellationToken Stopping { get; set; }

    private readonly CancellationTokenSource _cut = new();
    private int _draining;

    /// <summary>True once the worker is draining: it refuses new generation requests (503) and reports so in its state.</summary>
    public bool Draining => Volatile.Read(ref _draining) != 0;

    /// <summary>Cancelled when in-flight generation must end: <see cref="WorkerOptions.DrainTimeout"/> after stopping began, or at once on a hard stop.</summary>
    public CancellationToken Cut => _cut.Token;

    /// <summary>Starts draining (idempotent); returns false when it already was.</summary>
    public bool BeginDrain() => Interlocked.Exchange(ref _draining, 1) == 0;

    /// <summary>The host began stopping: drain, and cut what is still running after the drain timeout.</summary>
    public void OnStopping()
    {
        BeginDrain();
        try
        {
            _cut.CancelAfter(Options.DrainTimeout);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    /// <summary>Cuts every in-flight request now (hard stop).</summary>
    public void CutNow()
    {
        BeginDrain();
        _cut.Cancel();
    }

    public ModelProfile Profile { get; }

    /// <summary>The cpu or gpu backend (real tokens), or null for the roofline backend.</summary>
    public ComputeBackend? Compute { get; }

    /// <summary>Longest prompt + output served (the cpu backend caps it at the model's context length).</summary>
    public int MaxModelLength { get; }

    public EngineLoop Loop { get; }

    public string ServedModel { get; }

    public OutputPlanner Planner { get; }

    /// <summary>Unix time the worker started (the models list's <c>created</c>).</summary>
    public long Created { get; }

    /// <summary>A unique response / engine request id with <paramref name="prefix"/> ("chatcmpl", "cmpl").</summary>
    public string NextId(string prefix) => $"{prefix}-{_idTag}{Interlocked.Increment(ref _nextId):x8}";

    /// <summary>True when <paramref name="model"/> names this worker's model (served id, or the profile name as an alias).</summary>
    public bool ServesModel(string model) =>
        string.Equals(model, ServedModel, StringComparison.Ordinal) || string.Equals(model, Profile.Name, StringComparison.Ordinal);
}
