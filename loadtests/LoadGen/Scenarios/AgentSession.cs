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

    /// <summary>
    /// Replay the trace's tool use (default on): every request offers <see cref="AgentTools.Default"/>; a turn the trace
    /// ended with <c>stop: tool_use</c> asks for a call (<c>tool_choice: "required"</c>), any other turn for text
    /// (<c>"none"</c>); the next turn appends the assistant's calls and a <c>tool</c> result (or its text and a user
    /// message) to the conversation. Off: every request is one user message with the whole prompt and no tools.
    /// </summary>
    public bool ToolCalls { get; init; } = true;

    /// <summary>max_tokens of a turn that must end in a tool call: room for the worker's whole JSON arguments (a call
    /// cut by max_tokens ends with <c>length</c>, not <c>tool_calls</c>).</summary>
    public int MinToolCallTokens { get; init; } = 48;

    /// <summary>Run the sub-agents' requests alongside the parent.</summary>
    public bool Subagents { get; init; } = true;

    /// <summary>Trace blocks kept: every <c>KeepEvery</c>-th (prefix sharing is preserved by subsampling positions).</summary>
    public int KeepEvery => Math.Max(1, (int)Math.Round(Scale / 4));

    /// <summary>Words (default-tokenizer tokens) each kept block renders to.</summary>
    public int WordsPerBlock(int traceBlockSize) => Math.Max(1, (int)Math.Round(traceBlockSize * KeepEvery / Scale));
}

/// <summary>The functions an agent session offers: a small Claude-Code-like set (names and schemas only).</summary>
public static class AgentTools
{
    /// <summary>Bash, Read, Edit, Grep.</summary>
    public static IReadOnlyList<ToolDefinition> Default { get; } =
    [
        new("Bash", "Run a shell command in the repository.", """{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}"""),
        new("Read", "Read a file.", """{"type":"object","properties":{"file_path":{"type":"string"}},"required":["file_path"]}"""),
        new("Edit", "Replace text in a file.", """{"type":"object","properties":{"file_path":{"type":"string"},"old_string":{"type":"string"},"new_string":{"type":"string"}},"required":["file_path","old_string","new_string"]}"""),
        new("Grep", "Search files for a pattern.", """{"type":"object","properties":{"pattern":{"type":"string"},"path":{"type":"string"}},"required":["pattern"]}"""),
    ];
}

/// <summary>
/// Replays one agent session of a WEKA trace: the next request goes out when the previous one completed plus
/// the recorded think time (tool-call gap after <c>stop: tool_use</c>, human gap after <c>end_turn</c>), scaled.
/// Prompt text is synthetic, built block by block from the request's <c>hash_ids</c>: a block id always renders to
/// the same words, so requests share exactly the prefix the trace says they share. Ids are local to a trace (v8), so
/// block text is keyed by (trace, id); the first tools+system blocks are keyed by position only, so all sessions
/// share that warm prefix.
/// <para>With <see cref="AgentScaling.ToolCalls"/> the session is a conversation, as an agent sends it: the first
/// request is one user message with the first prompt's blocks; a turn the trace ended with <c>tool_use</c> is sent
/// with <c>tool_choice: "required"</c>, and when the answer did call tools the next request appends the assistant
/// message with those calls and one <c>tool</c> message per call, the first holding the blocks the trace's next
/// prompt adds (the others a short fixed text). After a text answer, the assistant text and a user message with the
/// new blocks are appended. The rendered prompt therefore extends the previous one (prefix reuse, and what the
/// gateway's session tracker classifies as a tool gap or a human gap). A next prompt that does not extend the
/// previous one (the trace rewrote its context: compaction, ~4 % of turns) or follows an error starts a new
/// conversation with the whole prompt. Each session sends a fixed <c>seed</c> (from its id), so the reference
/// worker picks the same functions and arguments in every run.</para>
/// </summary>
public sealed class AgentSession : ISession
{
    private readonly WekaTrace _trace;
    private readonly IReadOnlyList<WekaRequest> _requests;
    private readonly AgentScaling _scaling;
    private readonly Dictionary<long, int> _sharedPosition;
    private readonly ulong _traceKey;
    private readonly string? _parentId;
    private readonly long _seed;
    private readonly List<ChatMessage> _history = [];
    private int _keptInHistory;
    private int _next;

    /// <summary>A root session of <paramref name="trace"/> for <paramref name="tenant"/>.</summary>
    public AgentSession(WekaTrace trace, Tenant tenant, string id, AgentScaling scaling)
        : this(trace, trace.Requests, tenant, id, null, scaling)
    {
    }

    private AgentSession(WekaTrace trace, IReadOnlyList<WekaRequest> requests, Tenant tenant, string id, string? parentId, AgentScaling scaling)
    {
        _trace = trace;
        _requests = requests;
        _scaling = scaling;
        _parentId = parentId;
        Tenant = tenant;
        Id = id;
        _traceKey = SyntheticText.Key(trace.Id);
        _seed = (long)(SyntheticText.Key(id) & 0x7FFF_FFFF_FFFFUL);
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
        if (parentId is null && scaling.Subagents)
        {
            int k = 0;
            foreach (var sub in trace.Subagents)
            {
                var offset = TimeSpan.FromSeconds(Math.Min(sub.Start * scaling.TimeScale, 3600));
                children.Add((offset, new AgentSession(trace, sub.Requests, tenant, $"{id}/sub{k++}", id, scaling)));
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

        var prior = _next > 0 ? _requests[_next - 1] : null;
        var r = _requests[_next++];
        double think = _next == 1 ? 0 : Math.Max(0, r.ThinkTime) * _scaling.TimeScale;
        var thinkSpan = TimeSpan.FromSeconds(Math.Min(think, _scaling.MaxThink.TotalSeconds));
        int maxTokens = (int)Math.Clamp(Math.Round(r.Out / _scaling.Scale), 1, _scaling.MaxOutputTokens);
        if (!_scaling.ToolCalls)
        {
            return new SessionStep(thinkSpan, new ChatRequest
            {
                Tenant = Tenant,
                Messages = [new ChatMessage("user", Prompt(r))],
                MaxTokens = maxTokens,
                SessionId = Id,
                ParentSessionId = _parentId,
                IgnoreEos = false,
            });
        }

        string? gap = previous is null ? null : previous.ToolCalls.Count > 0 ? Gap.Tool : Gap.Human;
        int common = prior is null ? 0 : CommonPrefix(prior.HashIds, r.HashIds);
        bool extends = prior is not null && previous is { Outcome: Outcome.Ok } && _history.Count > 0 && common >= prior.HashIds.Length - 1;
        if (extends)
        {
            string added = Render(r, common, ref _keptInHistory);
            if (added.Length == 0)
            {
                added = SyntheticText.Words(SyntheticText.Key(_traceKey, (ulong)_next), 4);
            }

            if (previous!.ToolCalls.Count > 0)
            {
                _history.Add(ChatMessage.AssistantToolCalls([.. previous.ToolCalls]));
                for (int i = 0; i < previous.ToolCalls.Count; i++)
                {
                    _history.Add(ChatMessage.ToolResult(previous.ToolCalls[i].Id, i == 0 ? added : "ok"));
                }
            }
            else
            {
                _history.Add(new ChatMessage("assistant", previous.Content));
                _history.Add(new ChatMessage("user", added));
            }
        }
        else
        {
            _history.Clear();
            _keptInHistory = 0;
            _history.Add(new ChatMessage("user", Render(r, 0, ref _keptInHistory)));
        }

        bool toolTurn = r.Stop == "tool_use";
        int? reusable = extends && previous!.PromptTokens > 0 ? previous.PromptTokens : null;
        return new SessionStep(thinkSpan, new ChatRequest
        {
            Tenant = Tenant,
            Messages = [.. _history],
            MaxTokens = toolTurn ? Math.Max(maxTokens, _scaling.MinToolCallTokens) : maxTokens,
            SessionId = Id,
            ParentSessionId = _parentId,
            IgnoreEos = false,
            Tools = AgentTools.Default,
            ToolChoice = toolTurn ? "required" : "none",
            Seed = _seed,
            GapBefore = gap,
            ReusablePrefixTokens = reusable,
        });
    }

    /// <summary>The synthetic prompt of one trace request (all its kept blocks; exposed for tests).</summary>
    public string Prompt(WekaRequest r)
    {
        ArgumentNullException.ThrowIfNull(r);
        int kept = 0;
        return Render(r, 0, ref kept);
    }

    /// <summary>Renders the kept blocks of <paramref name="r"/> from block position <paramref name="from"/> on, while
    /// <paramref name="kept"/> (blocks rendered so far in the conversation) stays under <see cref="AgentScaling.MaxBlocks"/>.
    /// A request without blocks renders as words for its length.</summary>
    private string Render(WekaRequest r, int from, ref int kept)
    {
        int keep = _scaling.KeepEvery;
        int words = _scaling.WordsPerBlock(_trace.BlockSize);
        var sb = new StringBuilder();
        int start = (from + keep - 1) / keep * keep; // positions 0, keep, 2·keep, … are the kept ones
        for (int i = start; i < r.HashIds.Length && kept < _scaling.MaxBlocks; i += keep, kept++)
        {
            long h = r.HashIds[i];
            ulong key = _sharedPosition.TryGetValue(h, out int pos)
                ? SyntheticText.Key(0x5AA4ED5UL, (ulong)pos)
                : SyntheticText.Key(_traceKey, (ulong)h);
            SyntheticText.AppendWords(sb, key, words);
        }

        if (sb.Length == 0 && r.HashIds.Length == 0)
        {
            SyntheticText.AppendWords(sb, SyntheticText.Key(_traceKey, (ulong)_next), Math.Max(1, (int)(r.In / _scaling.Scale)));
        }

        return sb.ToString();
    }

    private static int CommonPrefix(long[] a, long[] b)
    {
        int n = 0;
        while (n < a.Length && n < b.Length && a[n] == b[n])
        {
            n++;
        }

        return n;
    }
}
