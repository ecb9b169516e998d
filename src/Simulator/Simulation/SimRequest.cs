using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Simulator.Traces;

namespace Simulator.Simulation;

/// <summary>One request of a run, from arrival to finish: what it asked, where it went and where its TTFT went.</summary>
internal sealed class SimRequest
{
    public long Id { get; init; }

    /// <summary>The id the engine knows it by.</summary>
    public required string EngineId { get; init; }

    public required SessionState Session { get; init; }

    public int Turn { get; init; }

    public required TraceRequest Trace { get; init; }

    public double Arrival { get; init; }

    public required ulong[] Hashes { get; init; }

    public int Output { get; init; }

    public required RouteRequest Route { get; init; }

    public QueuedRequest Queued { get; set; } = null!;

    public int Worker { get; set; } = -1;

    public int PredictedUncached { get; set; }

    public double FirstToken { get; set; } = double.NaN;

    public double Finish { get; set; } = double.NaN;

    public int Cached { get; set; }

    public int Emitted { get; set; }

    public bool ReachedDecode { get; set; }

    /// <summary>Prompt tokens shared with the session's previous turn (a resumed turn's reusable prefix).</summary>
    public int ReusableTokens { get; set; }

    public int CachedOnArrival { get; set; }

    public int PreviousWorker { get; set; } = -1;

    public bool AfterToolGap { get; set; }

    public PinFate PinFate { get; set; }

    /// <summary>Engine priority from the program-level ordering (a resumed turn's), before the under-share hint.</summary>
    public int EnginePriority { get; set; }

    public double Dispatch { get; set; } = double.NaN;

    public string Reason { get; set; } = "";

    public long QueuedPrefillAtDispatch { get; set; }

    public int SentPriority { get; set; }

    public double StepInProgress { get; set; }

    public double FirstScheduled { get; set; } = double.NaN;

    public int PrefillSteps { get; set; }

    public double PrefillStepSeconds { get; set; }

    public int PrefillDecodes { get; set; }

    public int PrefillShared { get; set; }

    public int Preempted { get; set; }

    public int ComputedUpTo { get; set; }

    public TtftBreakdown Breakdown() => new()
    {
        Priority = SentPriority,
        FirstScheduled = FirstScheduled,
        StepInProgressSeconds = StepInProgress,
        PrefillSteps = PrefillSteps,
        PrefillStepSeconds = PrefillStepSeconds,
        PrefillDecodes = PrefillDecodes,
        PrefillSharedTokens = PrefillShared,
        Preempted = Preempted,
    };
}
