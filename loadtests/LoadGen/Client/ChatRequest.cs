namespace LoadGen.Client;

/// <summary>A tenant as the load generator sees it: a label for reports and an optional API key (never reported).</summary>
public sealed record Tenant(string Name, string? ApiKey);

/// <summary>One chat message.</summary>
public sealed record ChatMessage(string Role, string Content);

/// <summary>One streaming chat-completions request to send.</summary>
public sealed class ChatRequest
{
    /// <summary>Who sends it.</summary>
    public required Tenant Tenant { get; init; }

    /// <summary>The conversation so far, last message from the user (or a tool result).</summary>
    public required IReadOnlyList<ChatMessage> Messages { get; init; }

    /// <summary>Tokens to generate at most (<c>max_tokens</c>).</summary>
    public int MaxTokens { get; init; } = 16;

    /// <summary>Session id sent as <c>x-session-id</c> (agent and chat sessions), or null.</summary>
    public string? SessionId { get; init; }

    /// <summary>OpenAI <c>user</c> field, or null.</summary>
    public string? User { get; init; }

    /// <summary>Ask for exactly <see cref="MaxTokens"/> tokens (<c>ignore_eos</c>, honoured by vLLM-style servers).</summary>
    public bool IgnoreEos { get; init; }
}
