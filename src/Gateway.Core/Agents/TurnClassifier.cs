namespace Gateway.Core.Agents;

/// <summary>What kind of pause follows a finished turn.</summary>
public enum GapKind
{
    /// <summary>The model asked for a tool: the agent runs it and comes back (median ~9 s in the WEKA traces).</summary>
    Tool,

    /// <summary>The model answered: the next turn waits for a human (median ~210 s).</summary>
    Human,
}

/// <summary>How a turn ended, from the response's finish_reason and tool calls.</summary>
/// <param name="Gap">The gap this turn opens.</param>
/// <param name="Tool">Tool label: the tool name, or names joined by '+' in order (sorted, distinct); "*" when unknown.</param>
public readonly record struct TurnOutcome(GapKind Gap, string Tool);

/// <summary>
/// Turn classification (issue 7): finish_reason "tool_calls" (OpenAI), "tool_use" (Anthropic) or any response that
/// carries tool calls opens a tool gap labelled by the tool name(s); "stop"/"end_turn"/"length" without tool calls
/// opens a human gap.
/// </summary>
public static class TurnClassifier
{
    /// <summary>Label used when the tool name is unknown.</summary>
    public const string AnyTool = "*";

    /// <summary>Classifies a finished turn.</summary>
    public static TurnOutcome Classify(string? finishReason, IReadOnlyList<string>? toolNames)
    {
        bool hasTools = toolNames is { Count: > 0 };
        bool toolReason = finishReason is "tool_calls" or "tool_use" or "function_call";
        if (!hasTools && !toolReason)
        {
            return new TurnOutcome(GapKind.Human, AnyTool);
        }

        return new TurnOutcome(GapKind.Tool, Label(toolNames));
    }

    /// <summary>Sorted distinct tool names joined by '+', or <see cref="AnyTool"/>.</summary>
    public static string Label(IReadOnlyList<string>? toolNames)
    {
        if (toolNames is null || toolNames.Count == 0)
        {
            return AnyTool;
        }

        if (toolNames.Count == 1)
        {
            return string.IsNullOrEmpty(toolNames[0]) ? AnyTool : toolNames[0];
        }

        var set = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var t in toolNames)
        {
            if (!string.IsNullOrEmpty(t))
            {
                set.Add(t);
            }
        }

        return set.Count == 0 ? AnyTool : string.Join('+', set);
    }
}
