using Gateway.Core.Routing;
using Worker.Engine;

namespace Simulator.Simulation;

/// <summary>One simulated worker: its engine, the live record routing sees, and the step loop's bookkeeping.</summary>
internal sealed class WorkerSlot(LlmEngine engine, WorkerInfo info)
{
    public LlmEngine Engine { get; } = engine;

    public WorkerInfo Info { get; } = info;

    /// <summary>A step is in progress (its events come at <see cref="StepEndsAt"/>).</summary>
    public bool Busy { get; set; }

    public double StepEndsAt { get; set; }

    public bool RetryPending { get; set; }

    public int StuckRetries { get; set; }

    public long ComputedTokens { get; set; }

    public long Preemptions { get; set; }

    /// <summary>Last KV event relayed to the routing policy's precise index.</summary>
    public long KvSeq { get; set; }

    public double LastPinSample { get; set; }

    public int LastPinned { get; set; }
}
