namespace LoadGen.Metrics;

/// <summary>How a request ended. Every request the generator starts ends with exactly one of these.</summary>
public enum Outcome
{
    /// <summary>A complete answer: 2xx, a stream that ended with <c>[DONE]</c> (or a complete JSON body).</summary>
    Ok,

    /// <summary>An error the client saw: an HTTP error status, a connection failure or reset, an error event in
    /// the stream, a stream cut before <c>[DONE]</c>, or a client-side timeout (the reason says which).</summary>
    Error,
}

/// <summary>What one request measured. Times are milliseconds; <see cref="StartSeconds"/> is since the run began.</summary>
public sealed class RequestResult
{
    /// <summary>Sequence number within the run.</summary>
    public long Id { get; init; }

    /// <summary>Flow (sub-scenario) that issued it.</summary>
    public string Flow { get; init; } = "";

    /// <summary>Tenant label.</summary>
    public string Tenant { get; init; } = "";

    /// <summary>Session id, if any.</summary>
    public string? SessionId { get; init; }

    /// <summary>Send time, seconds since the run started.</summary>
    public double StartSeconds { get; set; }

    /// <summary>How it ended.</summary>
    public Outcome Outcome { get; set; }

    /// <summary>Short machine-readable reason for an error (e.g. <c>http_503</c>, <c>timeout_first_token</c>, <c>connect_refused</c>).</summary>
    public string? ErrorReason { get; set; }

    /// <summary>HTTP status, 0 when no response arrived.</summary>
    public int HttpStatus { get; set; }

    /// <summary>Time to the first content (or tool-call) chunk.</summary>
    public double? TtftMs { get; set; }

    /// <summary>Time to the end of the response (or to the error).</summary>
    public double E2eMs { get; set; }

    /// <summary>Gaps between consecutive content chunks after the first.</summary>
    public List<double> ItlMs { get; } = [];

    /// <summary>(E2E − TTFT) / (output tokens − 1), when there were at least two output tokens.</summary>
    public double? TpotMs { get; set; }

    /// <summary>Prompt tokens from <c>usage</c> (0 if not reported).</summary>
    public int PromptTokens { get; set; }

    /// <summary>Output tokens from <c>usage</c>, else the number of content chunks.</summary>
    public int OutputTokens { get; set; }

    /// <summary><c>usage.prompt_tokens_details.cached_tokens</c>.</summary>
    public int CachedTokens { get; set; }

    /// <summary>Content chunks received.</summary>
    public int Chunks { get; set; }

    /// <summary>Assistant text received (kept for multi-turn sessions, never reported).</summary>
    public string Content { get; set; } = "";

    /// <summary>The answer's <c>finish_reason</c> (<c>stop</c>, <c>length</c>, <c>tool_calls</c>), or null.</summary>
    public string? FinishReason { get; set; }

    /// <summary>Tool calls the answer asked for (streamed deltas joined), kept for the next turn of an agent session.</summary>
    public List<Client.ToolCall> ToolCalls { get; } = [];

    /// <summary>What preceded this request in its session (<see cref="Client.Gap"/>), or null for a first turn.</summary>
    public string? GapBefore { get; init; }

    /// <summary>Prompt tokens this request shares with the previous one of its conversation (its prompt tokens), or null.</summary>
    public int? ReusablePrefixTokens { get; init; }
}
