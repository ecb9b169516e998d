using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>What a <see cref="SimEvent"/> does when virtual time reaches it.</summary>
internal enum SimEventKind
{
    /// <summary>A session (root or sub-agent) starts: its first turn may be issued.</summary>
    StartSession,

    /// <summary>A turn's request arrives at the gateway queue.</summary>
    Arrival,

    /// <summary>A worker's engine step ends: its sequence events are delivered.</summary>
    StepDone,

    /// <summary>A worker whose engine could schedule nothing tries again.</summary>
    Retry,

    /// <summary>The retention policy looks at pins about to expire.</summary>
    RenewCheck,

    /// <summary>A session's KV is brought back from the host tier ahead of its next turn.</summary>
    Prefetch,
}

/// <summary>One future event of a <see cref="SimulationRun"/>, ordered by (time, sequence) in its event queue.</summary>
internal sealed class SimEvent
{
    public SimEventKind Kind { get; private init; }

    public SessionState? Session { get; private init; }

    public int Turn { get; private init; }

    public int Worker { get; private init; }

    public StepResult? Step { get; private init; }

    public string? SessionId { get; private init; }

    public static SimEvent StartSession(SessionState s) => new() { Kind = SimEventKind.StartSession, Session = s };

    public static SimEvent Arrival(SessionState s, int turn) => new() { Kind = SimEventKind.Arrival, Session = s, Turn = turn };

    public static SimEvent StepDone(int worker, StepResult step) => new() { Kind = SimEventKind.StepDone, Worker = worker, Step = step };

    public static SimEvent Retry(int worker) => new() { Kind = SimEventKind.Retry, Worker = worker };

    public static SimEvent RenewCheck() => new() { Kind = SimEventKind.RenewCheck };

    public static SimEvent Prefetch(int worker, string session) => new() { Kind = SimEventKind.Prefetch, Worker = worker, SessionId = session };
}
