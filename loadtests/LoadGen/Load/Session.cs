using LoadGen.Client;
using LoadGen.Metrics;

namespace LoadGen.Load;

/// <summary>
/// A user or agent: a sequence of requests where the next one is decided after the previous one completes
/// (closed loop inside a session). A single-request session is one open-loop arrival.
/// </summary>
public interface ISession
{
    /// <summary>Who sends the requests.</summary>
    Tenant Tenant { get; }

    /// <summary>Session id (sent as <c>x-session-id</c>), or null.</summary>
    string? Id { get; }

    /// <summary>Sessions that run alongside this one (agent sub-agents), each started at its offset from this session's start.</summary>
    IReadOnlyList<(TimeSpan Offset, ISession Session)> Children { get; }

    /// <summary>The next request and the think time before it, or null when the session is over.
    /// <paramref name="previous"/> is the result of the previous request (null before the first).</summary>
    SessionStep? Next(RequestResult? previous);
}

/// <summary>One step of a session.</summary>
public readonly record struct SessionStep(TimeSpan ThinkBefore, ChatRequest Request);

/// <summary>A session of exactly one request.</summary>
public sealed class SingleRequestSession(ChatRequest request) : ISession
{
    private bool _sent;

    /// <inheritdoc />
    public Tenant Tenant => request.Tenant;

    /// <inheritdoc />
    public string? Id => request.SessionId;

    /// <inheritdoc />
    public IReadOnlyList<(TimeSpan Offset, ISession Session)> Children => [];

    /// <inheritdoc />
    public SessionStep? Next(RequestResult? previous)
    {
        if (_sent)
        {
            return null;
        }

        _sent = true;
        return new SessionStep(TimeSpan.Zero, request);
    }
}

/// <summary>
/// A named stream of sessions with its load simulations: the unit NBomber calls a scenario. A run executes
/// several flows at once (e.g. one per tenant for the noisy-neighbour test).
/// </summary>
public sealed class Flow
{
    /// <summary>Name shown in reports.</summary>
    public required string Name { get; init; }

    /// <summary>Phases, run one after the other.</summary>
    public required IReadOnlyList<LoadSimulation> Simulations { get; init; }

    /// <summary>Creates session number <c>index</c> of this flow; the random source is seeded per session.</summary>
    public required Func<long, Random, ISession> NewSession { get; init; }
}

/// <summary>Something done at a fixed time during a run (e.g. kill a worker for the failover scenario).</summary>
public sealed record TimedAction(string Name, TimeSpan At, Func<CancellationToken, Task> Action);

/// <summary>An action that ran, for the report; <paramref name="AtSeconds"/> is when it finished, i.e. took effect.</summary>
public sealed record RunEvent(string Name, double AtSeconds, string? Error);
