using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>What a retention planner sees when a turn ends (never the future: no next think time).</summary>
public sealed class TurnCompletedContext
{
    /// <summary>Virtual time, seconds.</summary>
    public double Now { get; init; }

    /// <summary>Session id.</summary>
    public required string SessionId { get; init; }

    /// <summary>Tenant path.</summary>
    public required string Tenant { get; init; }

    /// <summary>"tool_use", "end_turn" or null.</summary>
    public string? Stop { get; init; }

    /// <summary>Tool name, when the trace has it.</summary>
    public string? Tool { get; init; }

    /// <summary>True when the session has no further turn (the planner should release).</summary>
    public bool LastTurn { get; init; }

    /// <summary>Worker index that served the turn.</summary>
    public int Worker { get; init; }

    /// <summary>The engine of that worker (Retain/Release act on it).</summary>
    public required LlmEngine Engine { get; init; }

    /// <summary>Prompt block hashes of the finished turn.</summary>
    public required ulong[] BlockHashes { get; init; }
}

/// <summary>What a retention planner sees when a session's next turn arrives (to score its prediction).</summary>
public sealed class TurnArrivedContext
{
    /// <summary>Virtual time, seconds.</summary>
    public double Now { get; init; }

    /// <summary>Session id.</summary>
    public required string SessionId { get; init; }

    /// <summary>Seconds since the session's previous turn completed.</summary>
    public double GapSeconds { get; init; }
}

/// <summary>
/// Hook for agent-aware KV retention (issue 7): the run loop calls it when a turn completes (pin or release the
/// session's blocks on its worker) and when a session's next turn arrives (learn the gap). Planners report the
/// pinned block-seconds that no later turn used.
/// </summary>
public interface IRetentionPlanner
{
    /// <summary>Name used by --retention.</summary>
    string Name { get; }

    /// <summary>A turn finished.</summary>
    void OnTurnCompleted(TurnCompletedContext context);

    /// <summary>A session's next turn arrived.</summary>
    void OnTurnArrived(TurnArrivedContext context);

    /// <summary>Block-seconds pinned by this planner that no later request reused.</summary>
    double PinnedUnusedBlockSeconds { get; }
}

/// <summary>The baseline: no hints, no pins.</summary>
public sealed class NoRetentionPlanner : IRetentionPlanner
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "off";

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public double PinnedUnusedBlockSeconds => 0;

    /// <inheritdoc />
    public void OnTurnCompleted(TurnCompletedContext context)
    {
    }

    /// <inheritdoc />
    public void OnTurnArrived(TurnArrivedContext context)
    {
    }
}

/// <summary>Retention planners by name (issue 7 registers more here).</summary>
public static class RetentionPlanners
{
    /// <summary>Names accepted by --retention.</summary>
    public static IReadOnlyList<string> Names { get; } = [NoRetentionPlanner.PolicyName];

    /// <summary>Creates a fresh planner.</summary>
    public static IRetentionPlanner Create(string name, TimeProvider time) => name switch
    {
        NoRetentionPlanner.PolicyName => new NoRetentionPlanner(),
        _ => throw new ArgumentException($"unknown retention policy '{name}'; known: {string.Join(", ", Names)}", nameof(name)),
    };
}
