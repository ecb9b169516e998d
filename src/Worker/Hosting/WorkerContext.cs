using Worker.Engine;
using Worker.Generation;

namespace Worker.Hosting;

/// <summary>Per-worker shared state the HTTP handlers use (one per <see cref="WorkerHost"/>; several per process).</summary>
internal sealed class WorkerContext
{
    private readonly string _idTag;
    private long _nextId;

    public WorkerContext(WorkerOptions options, ModelProfile profile, EngineLoop loop)
    {
        Options = options;
        Profile = profile;
        Loop = loop;
        ServedModel = options.ModelName ?? profile.ServedModel;
        Planner = new OutputPlanner(options);
        Span<byte> tag = stackalloc byte[4];
        System.Security.Cryptography.RandomNumberGenerator.Fill(tag);
        _idTag = Convert.ToHexStringLower(tag);
        Created = options.TimeProvider.GetUtcNow().ToUnixTimeSeconds();
    }

    public WorkerOptions Options { get; }

    /// <summary>Cancelled when the host starts stopping: open streams end at once instead of holding shutdown.</summary>
    public CancellationToken Stopping { get; set; }

    public ModelProfile Profile { get; }

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
