using Simulator.Traces;

namespace Simulator.Tests.Simulation;

/// <summary>Builds agent-trace turns for the retention and program-priority specs.</summary>
internal static class AgentTurns
{
    /// <summary>
    /// A turn at <paramref name="t"/> of <paramref name="blocks"/> 16-token blocks with hash ids
    /// <paramref name="firstId"/>.. (consecutive turns sharing ids share a prefix), 4 output tokens.
    /// </summary>
    public static TraceRequest Req(double t, string? session, long firstId, int blocks, double think = 0, string? stop = null) =>
        new()
        {
            T = t,
            Session = session,
            In = blocks * 16,
            Out = 4,
            BlockSize = 16,
            HashIds = HashIds.Of([.. Enumerable.Range(0, blocks).Select(i => firstId + i)]),
            Think = think,
            Stop = stop,
        };
}
