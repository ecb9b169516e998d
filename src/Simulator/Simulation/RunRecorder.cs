namespace Simulator.Simulation;

/// <summary>
/// What a run measures per request: TTFT, TPOT and end-to-end latency, one <see cref="RequestRecord"/> per request
/// (served or rejected), prompt, cached and output tokens, the re-prefill of resumed turns by cause, and the run's
/// span from first arrival to last finish.
/// </summary>
internal sealed class RunRecorder
{
    // Denning window of the agent working-set report: a tool-gap scale (median ~9 s, p90 ~71 s in the WEKA traces).
    private const double WorkingSetTauSeconds = 60;

    private readonly List<double> _ttft = [], _tpot = [], _e2e = [];
    private readonly List<RequestRecord> _records = [];
    private long _promptTokens, _cachedTokens, _outputTokens;
    private double _firstArrival = double.NaN, _lastFinish;

    public int Completed { get; private set; }

    public int Rejected { get; private set; }

    public double ReprefillTokens { get; private set; }

    public long ReloadedTokens { get; set; }

    public long ResumedBoosted { get; set; }

    public long UrgentDispatches { get; set; }

    public long Events { get; set; }

    public ResumedStats ResumedTool { get; } = new();

    public ResumedStats ResumedHuman { get; } = new();

    public List<RequestRecord> Records => _records;

    /// <summary>Seconds from the first arrival to the last finish.</summary>
    public double Span => double.IsNaN(_firstArrival) ? 0 : _lastFinish - _firstArrival;

    public double PrefixHitRatio => _promptTokens == 0 ? 0 : (double)_cachedTokens / _promptTokens;

    public double OutputTokensPerSecond => Span > 0 ? _outputTokens / Span : 0;

    /// <summary>A request arrived at <paramref name="t"/>.</summary>
    public void Arrived(double t)
    {
        if (double.IsNaN(_firstArrival))
        {
            _firstArrival = t;
        }
    }

    /// <summary>
    /// <paramref name="r"/> finished at <paramref name="t"/>; with <paramref name="breakdown"/> its record keeps the
    /// TTFT breakdown. Returns its TTFT in milliseconds.
    /// </summary>
    public double Served(SimRequest r, double t, bool breakdown)
    {
        Completed++;
        var s = r.Session;
        double ttft = (r.FirstToken - r.Arrival) * 1000.0;
        _ttft.Add(ttft);
        _e2e.Add((t - r.Arrival) * 1000.0);
        if (r.Output > 1)
        {
            _tpot.Add((t - r.FirstToken) * 1000.0 / (r.Output - 1));
        }

        _records.Add(new RequestRecord(s.Session.Id, r.Turn, s.Session.Tenant, r.Arrival, r.FirstToken, t, r.Worker, r.Trace.In, r.Cached, r.Output, false)
        {
            Dispatch = r.Dispatch,
            Reason = r.Reason,
            QueuedPrefillAtDispatch = r.QueuedPrefillAtDispatch,
            PreviousWorker = r.PreviousWorker,
            AfterToolGap = r.AfterToolGap,
            ReusableTokens = r.ReusableTokens,
            CachedOnArrival = r.CachedOnArrival,
            PredictedCachedTokens = r.Trace.In - r.PredictedUncached,
            Breakdown = breakdown ? r.Breakdown() : null,
        });
        _promptTokens += r.Trace.In;
        _cachedTokens += r.Cached;
        _outputTokens += r.Output;
        if (r.Turn > 0)
        {
            int lost = Math.Max(0, r.ReusableTokens - r.Cached);
            ReprefillTokens += lost;
            var cause = ResumedStats.CauseOf(r.Worker, r.PreviousWorker, r.CachedOnArrival, r.Cached, r.ReusableTokens);
            (r.AfterToolGap ? ResumedTool : ResumedHuman).Add(r.ReusableTokens, lost, cause, r.PinFate);
        }

        _lastFinish = Math.Max(_lastFinish, t);
        return ttft;
    }

    /// <summary><paramref name="r"/> was refused (no worker, or the engine would not take it) at <paramref name="t"/>.</summary>
    public void Refused(SimRequest r, double t)
    {
        Rejected++;
        _records.Add(new RequestRecord(r.Session.Session.Id, r.Turn, r.Session.Session.Tenant, r.Arrival, double.NaN, t, -1, r.Trace.In, 0, 0, true));
        _lastFinish = Math.Max(_lastFinish, t);
    }

    public Percentiles Ttft() => Percentiles.Of(_ttft);

    public Percentiles Tpot() => Percentiles.Of(_tpot);

    public Percentiles E2e() => Percentiles.Of(_e2e);

    /// <summary>Every TTFT sample, sorted.</summary>
    public List<double> TtftSamples()
    {
        var sorted = new List<double>(_ttft);
        sorted.Sort();
        return sorted;
    }

    /// <summary>The agent sessions' working set over the run (null without agent sessions).</summary>
    public WorkingSet? AgentWorkingSet(IEnumerable<SessionState> sessions, long poolTokens)
    {
        var agents = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in sessions)
        {
            if (!s.Session.OneShot)
            {
                agents.Add(s.Session.Id);
            }
        }

        return agents.Count == 0 ? null : WorkingSet.Of(_records, agents, WorkingSetTauSeconds, poolTokens);
    }
}
