using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Core.Routing;
using Gateway.Fleet;

namespace Gateway.Proxy;

/// <summary>
/// Per-request state kept on the <see cref="Microsoft.AspNetCore.Http.HttpContext"/> as a feature: who asked
/// (tenant), what (parsed request, session identity, block hashes), where it went, and what came back (usage,
/// finish reason, tool-call names) for the routing, fairness and agent layers.
/// </summary>
public sealed class GatewayRequestContext
{
    private List<string>? _toolCalls;

    /// <summary>Gateway-unique request id.</summary>
    public required long RequestId { get; init; }

    /// <summary>Authenticated tenant.</summary>
    public required Tenant Tenant { get; init; }

    /// <summary>Parsed body.</summary>
    public required OpenAiRequest Request { get; init; }

    /// <summary>Session id (first of x-session-id, x-claude-code-session-id, session_id, prompt_cache_key, user).</summary>
    public string? SessionId { get; init; }

    /// <summary>Where <see cref="SessionId"/> came from (header or body field name).</summary>
    public string? SessionSource { get; init; }

    /// <summary>The priority class the client asked for (<c>x-priority</c>), or null.</summary>
    public Gateway.Core.Tenancy.PriorityClass? AskedPriority { get; init; }

    /// <summary>What the routing policy sees.</summary>
    public required RouteRequest Route { get; init; }

    /// <summary>Body bytes sent to the worker (original, or rewritten for include_usage).</summary>
    public required ReadOnlyMemory<byte> ForwardBody { get; set; }

    /// <summary>Path sent to the worker instead of the client's (a translated request goes to chat completions); null keeps the client's.</summary>
    public string? UpstreamPath { get; init; }

    /// <summary>True when the gateway added stream_options.include_usage and must strip the usage-only chunk.</summary>
    public bool StripUsageChunk { get; init; }

    /// <summary>
    /// Program-level order of the request (agent layer, <c>Gateway:Agents:ResumedTurnPriority</c>): a resumed agent turn
    /// gets a gateway-queue credit and a worker priority (<c>x-request-priority</c>); fresh work gets neither.
    /// </summary>
    public Gateway.Core.Agents.TurnPriority Priority { get; internal set; }

    /// <summary>Worker of the current (last) attempt.</summary>
    public WorkerEndpoint? Worker { get; internal set; }

    /// <summary>Attempts made.</summary>
    public int Attempts { get; internal set; }

    /// <summary>Predicted cached tokens of the routing decision.</summary>
    public int PredictedCachedTokens { get; internal set; }

    /// <summary>Usage reported by the worker (true once seen).</summary>
    public bool UsageSeen { get; internal set; }

    /// <summary>usage.prompt_tokens.</summary>
    public int PromptTokens { get; internal set; }

    /// <summary>usage.prompt_tokens_details.cached_tokens.</summary>
    public int CachedTokens { get; internal set; }

    /// <summary>usage.completion_tokens.</summary>
    public int CompletionTokens { get; internal set; }

    /// <summary>Last finish_reason seen ("stop", "length", "tool_calls", ...).</summary>
    public string? FinishReason { get; internal set; }

    /// <summary>Names of tool calls the model made.</summary>
    public IReadOnlyList<string> ToolCalls => (IReadOnlyList<string>?)_toolCalls ?? [];

    /// <summary>True once the first SSE data event (or the full JSON answer) arrived.</summary>
    public bool FirstEventSeen { get; internal set; }

    /// <summary>Timestamp (TimeProvider) when the body was parsed.</summary>
    public long StartTimestamp { get; init; }

    /// <summary>Clock of <see cref="StartTimestamp"/>.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Time from parse to the first event (time to first token through the gateway).</summary>
    public TimeSpan FirstEventAt { get; private set; }

    /// <summary>True when the SSE stream ended with <c>data: [DONE]</c>.</summary>
    public bool SawDone { get; internal set; }

    /// <summary>Set when the stream was ended by the gateway with an error event.</summary>
    public string? StreamError { get; internal set; }

    /// <summary>Called once at the first token: moves the worker's charge from prefill to decode.</summary>
    internal Action? OnFirstEvent { get; set; }

    /// <summary>Called for each streamed data event that is not the usage-only chunk (about one output token each): charges the fair queue as tokens stream.</summary>
    internal Action? OnDataEvent { get; set; }

    /// <summary>Called with each gap between consecutive streamed data events: inter-token latency as the client sees it.</summary>
    internal Action<TimeSpan>? OnTokenGap { get; set; }

    private long _lastDataEventAt;

    /// <summary>Streamed data events seen in the current attempt (output tokens when the worker reports no usage).</summary>
    public int DataEvents { get; internal set; }

    /// <summary>Time spent waiting in the gateway's fair queue.</summary>
    public TimeSpan QueueWait { get; internal set; }

    /// <summary>A streamed data event that is not the usage-only chunk (about one output token).</summary>
    internal void MarkDataEvent()
    {
        long now = Time.GetTimestamp();
        if (DataEvents > 0)
        {
            OnTokenGap?.Invoke(Time.GetElapsedTime(_lastDataEventAt, now));
        }

        _lastDataEventAt = now;
        DataEvents++;
        OnDataEvent?.Invoke();
    }

    internal void AddToolCall(string name) => (_toolCalls ??= []).Add(name);

    internal void MarkFirstEvent()
    {
        if (!FirstEventSeen)
        {
            FirstEventSeen = true;
            FirstEventAt = Time.GetElapsedTime(StartTimestamp);
            OnFirstEvent?.Invoke();
        }
    }

    internal void ResetAttemptState()
    {
        UsageSeen = false;
        PromptTokens = CachedTokens = CompletionTokens = 0;
        FinishReason = null;
        _toolCalls?.Clear();
        FirstEventSeen = false;
        DataEvents = 0;
        SawDone = false;
        StreamError = null;
        OnFirstEvent = null;
    }
}
