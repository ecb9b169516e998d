namespace LoadGen.Load;

/// <summary>
/// How sessions are started during one phase, after NBomber's load simulations (a flow runs its simulations
/// one after the other, as an NBomber scenario does): <see cref="Inject"/> = <c>Simulation.Inject</c>
/// (open loop), <see cref="RampingInject"/> = <c>Simulation.RampingInject</c>, <see cref="KeepConstant"/> =
/// <c>Simulation.KeepConstant</c> (closed loop), <see cref="InjectAt"/> = replay of recorded arrival times.
/// </summary>
public abstract record LoadSimulation(TimeSpan During)
{
    /// <summary>Open loop: sessions arrive as a Poisson process of <paramref name="Rate"/> per second
    /// (exponential gaps), whether or not earlier ones have finished.</summary>
    public sealed record Inject(double Rate, TimeSpan During) : LoadSimulation(During);

    /// <summary>Open loop with a rate that moves linearly from <paramref name="FromRate"/> to <paramref name="ToRate"/>.</summary>
    public sealed record RampingInject(double FromRate, double ToRate, TimeSpan During) : LoadSimulation(During);

    /// <summary>Closed loop: <paramref name="Copies"/> concurrent users, each starting its next session when the
    /// previous one has finished.</summary>
    public sealed record KeepConstant(int Copies, TimeSpan During) : LoadSimulation(During);

    /// <summary>Sessions start at the given offsets from the phase start (a trace's timestamps, already scaled).</summary>
    public sealed record InjectAt(IReadOnlyList<TimeSpan> Offsets) : LoadSimulation(Offsets.Count == 0 ? TimeSpan.Zero : Offsets[^1]);
}
