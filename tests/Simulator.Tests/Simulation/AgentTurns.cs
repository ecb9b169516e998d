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

    /// <summary>
    /// A 16-turn tool loop over a ~37 K-token context (gaps 5-11 s with a 45 s one every fourth) while one-shot requests of
    /// 1,000 fresh blocks arrive every second and flush an unpinned idle context out of a 6,000-block worker within seconds.
    /// </summary>
    public static List<TraceRequest> ToolLoopUnderPressure()
    {
        var reqs = new List<TraceRequest>();
        double[] gaps = [7, 5, 9, 45, 6, 11, 8, 45, 7, 5, 9, 45, 6, 11, 8, 45];
        for (int k = 0; k < gaps.Length; k++)
        {
            reqs.Add(Req(0, "s", 1, 2_300 + (5 * k), think: k == 0 ? 0 : gaps[k - 1], stop: "tool_use"));
        }

        for (int i = 0; i < 420; i++)
        {
            reqs.Add(Req(1 + i, null, 10_000_000 + (i * 10_000L), 1_000));
        }

        return reqs;
    }
}
