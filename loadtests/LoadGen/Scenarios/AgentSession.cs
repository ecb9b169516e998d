using System.Text;
using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;

namespace LoadGen.Scenarios;

/// <summary>How a WEKA trace is scaled down to fit a small fleet.</summary>
public sealed record AgentScaling
{
    /// <summary>Token scale: a request of N trace tokens becomes about N / Scale tokens (default 16).</summary>
    public double Scale { get; init; } = 16;

    /// <summary>Think/tool gaps are multiplied by this (default 0.1: a 9 s tool gap becomes 0.9 s).</summary>
    public double TimeScale { get; init; } = 0.1;

    /// <summary>No gap longer than this after scaling (human pauses of hours would stall a benchmark).</summary>
    public TimeSpan MaxThink { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>At most this many root requests per session.</summary>
    public int MaxTurns { get; init; } = 30;

    /// <summary>At most this many kept blocks per prompt (longer prompts keep their first blocks).</summary>
    public int MaxBlocks { get; init; } = 2048;

    /// <summary>Upper bound of max_tokens after scaling.</summary>
    public int MaxOutputTokens { get; init; } = 256;

    /// <summary>Model the first (tools + system) blocks as a prefix shared by every session, as upstream suggests.</summary>
    public bool SharedSystemPrefix { get; init; } = true;

    /// <summary>Run the sub-agents' requests alongside the parent.</summary>
    public bool Subagents { get; init; } = true;

    /// <summary>Trace blocks kept: every <c>KeepEvery</c>-th (prefix sharing is preserved by subsampling positions).</summary>
    public int KeepEvery => Math.Max(1, (int)Math.Round(Scale / 4));

    /// <summary>Words (default-tokenizer tokens) each kept block renders to.</summary>
    public int WordsPerBlock(int traceBlockSize) => Math.Max(1, (int)Math.Round(traceBlockSize * KeepEvery / Scale));
}

/// <summary>
/// Replays one agent session of a WEKA trace: the next request goes out when the previous one completed plus
/// the recorded think time (tool-call gap after <c>stop: tool_use</c>, human gap after <c>end_turn</c>), scaled.
/// The prompt is synthetic text built block by block from the request's <c>hash_ids</c>: a block id always
/// renders to the same words, so consecutive requests share exactly the prefix the trace says they share.
/// Ids are local to a trace (v8), so block text is keyed by (trace, id); the first tools+system blocks are keyed
/// by position only, so all sessions share that warm prefix.
/// </summary>
public sealed class AgentSession : ISession
{
    private readonly WekaTrace _trace;
    private readonly IReadOnlyList<WekaRequest> _requests;
    private readonly AgentScaling _scaling;
    private readonly Dictionary<long, int> _sharedPosition;
    private readonly ulong _traceKey;
    private int _next;

    /// <summary>A root session of <paramref name="trace"/> for <paramref name="tenant"/>.</summary>
    public AgentSession(WekaTrace trace, Tenant tenant, string id, AgentScaling scaling)
        : this(trace, trace.Requests, tenant, id, scaling, root: true)
    {
    }

    private AgentSession(WekaTrace trace, IReadOnlyList<WekaRequest> requests, Tenant tenant, string id, AgentScaling scaling, bool root)
    {
        _trace = trace;
        _requests = requests;
        _scaling = scaling;
        Tenant = tenant;
        Id = id;
        _traceKey = SyntheticText.Key(trace.Id);
        _sharedPosition = [];
        if (scaling.SharedSystemPrefix && trace.Requests.Count > 0)
        {
            int sharedBlocks = trace.SharedPrefixTokens / Math.Max(1, trace.BlockSize);
            long[] first = trace.Requests[0].HashIds;
            for (int i = 0; i < Math.Min(sharedBlocks, first.Length); i++)
            {
                _sharedPosition[first[i]] = i;
            }
        }

        var children = new List<(TimeSpan, ISession)>();
        if (root && scaling.Subagents)
        {
            int k = 0;
            foreach (var sub in trace.Subagents)
            {
                var offset = TimeSpan.FromSeconds(Math.Min(sub.Start * scaling.TimeScale, 3600));
                children.Add((offset, new AgentSession(trace, sub.Requests, tenant, $"{id}/sub{k++}", scaling, root: false)));
            }
        }

        Children = children;
    }

    /// <inheritdoc />
    public Tenant Tenant { get; }

    /// <inheritdoc />
    public string? Id { get; }

    /// <inheritdoc />
    public IReadOnlyList<(TimeSpan Offset, ISession Session)> Children { get; }

    /// <inheritdoc />
    public SessionStep? Next(RequestResult? previous)
    {
        if (_next >= _requests.Count || _next >= _scaling.MaxTurns)
        {
            return null;
        }

        var r = _requests[_next++];
        double think = _next == 1 ? 0 : Math.Max(0, r.ThinkTime) * _scaling.TimeScale;
        var thinkSpan = TimeSpan.FromSeconds(Math.Min(think, _scaling.MaxThink.TotalSeconds));
        int maxTokens = (int)Math.Clamp(Math.Round(r.Out / _scaling.Scale), 1, _scaling.MaxOutputTokens);
        return new SessionStep(thinkSpan, new ChatRequest
        {
            Tenant = Tenant,
            Messages = [new ChatMessage("user", Prompt(r))],
            MaxTokens = maxTokens,
            SessionId = Id,
            IgnoreEos = false,
        });
    }

    /// <summary>The synthetic prompt of one trace request (exposed for tests).</summary>
    public string Prompt(WekaRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        int keep = _scaling.KeepEvery;
        int words = _scaling.WordsPerBlock(_trace.BlockSize);
        var sb = new StringBuilder();
        int kept = 0;
        for (int i = 0; i < r.HashIds.Length && kept < _scaling.MaxBlocks; i += keep, kept++)
        {
            long h = r.HashIds[i];
            ulong key = _sharedPosition.TryGetValue(h, out int pos)
                ? SyntheticText.Key(0x5AA4ED5UL, (ulong)pos)
                : SyntheticText.Key(_traceKey, (ulong)h);
            SyntheticText.AppendWords(sb, key, words);
        }

        if (sb.Length == 0)
        {
            SyntheticText.AppendWords(sb, SyntheticText.Key(_traceKey, (ulong)_next), Math.Max(1, (int)(r.In / _scaling.Scale)));
        }

        return sb.ToString();
    }
}
