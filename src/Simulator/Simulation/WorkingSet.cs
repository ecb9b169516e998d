namespace Simulator.Simulation;

/// <summary>
/// How much KV the agent sessions of a run need, next to the pool that holds it (issue 7's "KV capacity at about half
/// the sessions' working set"). Two measures, each averaged over the arrivals of agent turns (the moments the cache is
/// asked; a uniform time average would be dominated by the hours-long tail where one idle session is alive):
/// <list type="bullet">
/// <item><see cref="MeanAliveTokens"/>: the sum of the current contexts of sessions between their first arrival and their
/// last finish — a session idle for an hour in a human gap counts in full;</item>
/// <item><see cref="MeanRecentTokens"/>: Denning's working set W(t, τ) — contexts of sessions running a turn (arrival to
/// finish) or whose last turn finished within the last τ seconds (τ = <see cref="TauSeconds"/>, a tool-gap scale).</item>
/// </list>
/// Computed after the run from the request records; the context of a turn is its prompt tokens.
/// </summary>
public sealed record WorkingSet(double TauSeconds, double MeanAliveTokens, double MeanRecentTokens, double P90RecentTokens, long PoolTokens)
{
    /// <summary>The working set of <paramref name="records"/> of the sessions in <paramref name="agentSessions"/>.</summary>
    public static WorkingSet Of(IReadOnlyList<RequestRecord> records, IReadOnlySet<string> agentSessions, double tauSeconds, long poolTokens)
    {
        var bySession = new Dictionary<string, List<RequestRecord>>(StringComparer.Ordinal);
        var times = new List<double>();
        foreach (var r in records)
        {
            if (r.Rejected || !agentSessions.Contains(r.Session))
            {
                continue;
            }

            if (!bySession.TryGetValue(r.Session, out var list))
            {
                bySession[r.Session] = list = [];
            }

            list.Add(r);
            times.Add(r.Arrival);
        }

        if (times.Count == 0)
        {
            return new WorkingSet(tauSeconds, 0, 0, 0, poolTokens);
        }

        times.Sort();
        int points = times.Count;
        var alive = new double[points];
        var recent = new double[points];
        foreach (var list in bySession.Values)
        {
            list.Sort(static (a, b) => a.Arrival.CompareTo(b.Arrival));
            double last = list[^1].Finish;
            int k = -1; // latest turn of the session that arrived at or before the sample time
            for (int i = 0; i < points; i++)
            {
                double t = times[i];
                while (k + 1 < list.Count && list[k + 1].Arrival <= t)
                {
                    k++;
                }

                if (k < 0 || t > last)
                {
                    continue;
                }

                var r = list[k];
                alive[i] += r.PromptTokens;
                if (t < r.Finish || t - r.Finish <= tauSeconds)
                {
                    recent[i] += r.PromptTokens;
                }
            }
        }

        var sorted = (double[])recent.Clone();
        Array.Sort(sorted);
        return new WorkingSet(tauSeconds, alive.Average(), recent.Average(), sorted[(int)Math.Min(points - 1, Math.Floor(0.9 * points))], poolTokens);
    }
}
