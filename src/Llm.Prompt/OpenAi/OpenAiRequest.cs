namespace Llm.Prompt.OpenAi;

/// <summary>Which OpenAI endpoint a body was sent to.</summary>
public enum OpenAiEndpoint
{
    /// <summary>/v1/chat/completions</summary>
    ChatCompletions,

    /// <summary>/v1/completions</summary>
    Completions,

    /// <summary>/v1/embeddings</summary>
    Embeddings,
}

/// <summary>
/// The fields of an OpenAI request body the gateway and the worker act on, parsed once.
/// The original body bytes are forwarded unchanged (apart from stream_options when the gateway needs usage).
/// </summary>
public sealed record OpenAiRequest
{
    /// <summary>Endpoint the body was parsed for.</summary>
    public required OpenAiEndpoint Endpoint { get; init; }

    /// <summary><c>model</c>.</summary>
    public required string Model { get; init; }

    /// <summary><c>stream</c>.</summary>
    public bool Stream { get; init; }

    /// <summary><c>stream_options.include_usage</c> as the client sent it.</summary>
    public bool IncludeUsage { get; init; }

    /// <summary><c>max_tokens</c> or <c>max_completion_tokens</c>, if given.</summary>
    public int? MaxTokens { get; init; }

    /// <summary><c>n</c> (default 1).</summary>
    public int N { get; init; } = 1;

    /// <summary><c>stop</c> sequences.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];

    /// <summary><c>seed</c>, if given.</summary>
    public long? Seed { get; init; }

    /// <summary>Names of the functions in <c>tools</c> (empty when none).</summary>
    public IReadOnlyList<string> ToolNames { get; init; } = [];

    /// <summary><c>tool_choice</c>: "none", "auto", "required", or a function name.</summary>
    public string? ToolChoice { get; init; }

    /// <summary><c>user</c>.</summary>
    public string? User { get; init; }

    /// <summary><c>prompt_cache_key</c>.</summary>
    public string? PromptCacheKey { get; init; }

    /// <summary>The prompt rendered to text by <see cref="PromptRenderer"/> (chat template or completion prompt).</summary>
    public string PromptText { get; init; } = "";

    /// <summary>Inputs of an embeddings request.</summary>
    public IReadOnlyList<string> EmbeddingInputs { get; init; } = [];

    /// <summary>Number of chat messages (0 for other endpoints).</summary>
    public int MessageCount { get; init; }

    /// <summary>
    /// Model turns already in the conversation: the chat's <c>assistant</c> messages (-1 for other endpoints). The agent layer
    /// compares it with the turn that opened a session's gap, to tell the session's next turn from one that follows turns
    /// served elsewhere (another gateway replica).
    /// </summary>
    public int PriorTurns { get; init; } = -1;

    /// <summary>Role of the last chat message ("tool" when the turn returns a tool result).</summary>
    public string? LastRole { get; init; }
}
