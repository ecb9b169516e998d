using LoadGen.Load;
using LoadGen.Metrics;

namespace LoadGen.Reporting;

/// <summary>Counts and latency distributions of a group of requests (a tenant, or all).</summary>
public sealed record GroupStats
{
    /// <summary>Requests started.</summary>
    public long Requests { get; init; }

    /// <summary>Answered completely.</summary>
    public long Ok { get; init; }

    /// <summary>Ended in an error (HTTP status, connection failure, stream cut, client timeout).</summary>
    public long Error { get; init; }

    /// <summary>Started but never recorded with an outcome (must be zero).</summary>
    public long NoAnswer { get; init; }

    /// <summary>Errors by reason.</summary>
    public SortedDictionary<string, long> ErrorReasons { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Time to first token of answered requests.</summary>
    public required LatencySummary TtftMs { get; init; }

    /// <summary>Inter-token (inter-chunk) latency over all gaps of answered requests.</summary>
    public required LatencySummary ItlMs { get; init; }

    /// <summary>Time per output token after the first, per answered request.</summary>
    public required LatencySummary TpotMs { get; init; }

    /// <summary>End-to-end latency of answered requests.</summary>
    public required LatencySummary E2eMs { get; init; }

    /// <summary>Prompt tokens reported by the server (answered requests).</summary>
    public long PromptTokens { get; init; }

    /// <summary>Output tokens received.</summary>
    public long OutputTokens { get; init; }

    /// <summary>Prompt tokens the server reported as served from its prefix cache.</summary>
    public long CachedTokens { get; init; }

    /// <summary>Prompt tokens the server had to prefill (PromptTokens − CachedTokens).</summary>
    public long UncachedTokens => PromptTokens - CachedTokens;

    /// <summary>Of the answered requests that extend their conversation's previous prompt, the tokens of that previous
    /// prompt the server did not serve from its cache: context computed once already and computed again (the
    /// simulator's <c>reprefill_tokens</c>; includes the previous prompt's last, partial block).</summary>
    public long ReprefilledTokens { get; init; }

    /// <summary>CachedTokens / PromptTokens.</summary>
    public double CacheHitRatio { get; init; }

    /// <summary>Answered requests per second of run time.</summary>
    public double RequestThroughput { get; init; }

    /// <summary>Output tokens per second of run time.</summary>
    public double OutputTokenThroughput { get; init; }
}

/// <summary>Per-tenant output-token throughput over time.</summary>
public sealed record Timeline(double BucketSeconds, SortedDictionary<string, double[]> OutputTokensPerSecond, double[] CompletedPerSecond);

/// <summary>The JSON report of one run.</summary>
public sealed record RunReport
{
    /// <summary>Scenario name.</summary>
    public required string Scenario { get; init; }

    /// <summary>What the scenario sends.</summary>
    public required string Description { get; init; }

    /// <summary>Base URL that was loaded.</summary>
    public required string Target { get; init; }

    /// <summary>Model id sent.</summary>
    public required string Model { get; init; }

    /// <summary>UTC start time.</summary>
    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>Wall time from start to the last request's end.</summary>
    public double ElapsedSeconds { get; init; }

    /// <summary>Command-line settings that shape the load.</summary>
    public required SortedDictionary<string, string> Settings { get; init; }

    /// <summary>Timed actions that ran (e.g. a worker kill).</summary>
    public IReadOnlyList<RunEvent> Events { get; init; } = [];

    /// <summary>All requests.</summary>
    public required GroupStats Overall { get; init; }

    /// <summary>By tenant label.</summary>
    public required SortedDictionary<string, GroupStats> Tenants { get; init; }

    /// <summary>Jain's fairness index over the tenants' output-token throughput (1 = equal); null with one tenant.</summary>
    public double? JainFairness { get; init; }

    /// <summary>Throughput over time.</summary>
    public required Timeline Timeline { get; init; }

    /// <summary>How late open-loop arrivals started against their schedule (ms; all zero for closed loop). A p99 of
    /// more than a few ms means the load generator was starved and offered less load than asked.</summary>
    public LatencySummary? ArrivalLagMs { get; init; }

    /// <summary>How the latency percentiles were computed and how precise they are (<see cref="LatencySummary.PrecisionNote"/>).</summary>
    public string LatencyPrecision { get; init; } = LatencySummary.PrecisionNote;

    /// <summary>Session requests by what preceded them (<c>tool</c>: the previous answer called tools; <c>human</c>: it
    /// answered in text; see <see cref="Client.Gap"/>); empty for scenarios that do not label them. Their
    /// <c>uncached_tokens</c> is the context re-prefilled after that kind of gap.</summary>
    public SortedDictionary<string, GroupStats> ResumedAfter { get; init; } = new(StringComparer.Ordinal);

    /// <summary>Builds the report from a run's results.</summary>
    public static RunReport Build(string scenario, string description, string target, string model, DateTimeOffset startedAt,
        SortedDictionary<string, string> settings, RunResult run, IReadOnlyDictionary<string, long> issuedByTenant)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(issuedByTenant);
        double elapsed = Math.Max(run.ElapsedSeconds, 1e-6);
        var byTenant = new SortedDictionary<string, List<RequestResult>>(StringComparer.Ordinal);
        foreach (var r in run.Results)
        {
            if (!byTenant.TryGetValue(r.Tenant, out var list))
            {
                byTenant[r.Tenant] = list = [];
            }

            list.Add(r);
        }

        foreach (string t in issuedByTenant.Keys)
        {
            byTenant.TryAdd(t, []);
        }

        var tenants = new SortedDictionary<string, GroupStats>(StringComparer.Ordinal);
        foreach (var (t, list) in byTenant)
        {
            long issued = issuedByTenant.TryGetValue(t, out long n) ? n : list.Count;
            tenants[t] = Stats(list, issued, elapsed);
        }

        var resumed = new SortedDictionary<string, GroupStats>(StringComparer.Ordinal);
        foreach (var g in run.Results.Where(r => r.GapBefore is not null).GroupBy(r => r.GapBefore!, StringComparer.Ordinal))
        {
            var list = g.ToList();
            resumed[g.Key] = Stats(list, list.Count, elapsed);
        }

        double? jain = null;
        if (tenants.Count > 1)
        {
            double sum = 0, sumSq = 0;
            foreach (var s in tenants.Values)
            {
                sum += s.OutputTokenThroughput;
                sumSq += s.OutputTokenThroughput * s.OutputTokenThroughput;
            }

            jain = sumSq > 0 ? sum * sum / (tenants.Count * sumSq) : null;
        }

        return new RunReport
        {
            Scenario = scenario,
            Description = description,
            Target = target,
            Model = model,
            StartedAt = startedAt,
            ElapsedSeconds = Math.Round(run.ElapsedSeconds, 3),
            Settings = settings,
            Events = run.Events,
            Overall = Stats(run.Results, run.Issued, elapsed),
            Tenants = tenants,
            ResumedAfter = resumed,
            JainFairness = jain is double j ? Math.Round(j, 4) : null,
            Timeline = BuildTimeline(run.Results, byTenant.Keys, elapsed),
            ArrivalLagMs = run.ArrivalLagMs is { Count: > 0 } lags ? LatencySummary.Of([.. lags]) : null,
        };
    }

    private static GroupStats Stats(IReadOnlyList<RequestResult> results, long issued, double elapsed)
    {
        var ttft = new List<double>();
        var itl = new List<double>();
        var tpot = new List<double>();
        var e2e = new List<double>();
        var reasons = new SortedDictionary<string, long>(StringComparer.Ordinal);
        long ok = 0, error = 0, prompt = 0, output = 0, cached = 0, reprefilled = 0;
        foreach (var r in results)
        {
            output += r.OutputTokens;
            if (r.Outcome == Outcome.Ok)
            {
                ok++;
                prompt += r.PromptTokens;
                cached += r.CachedTokens;
                if (r.ReusablePrefixTokens is int reusable)
                {
                    reprefilled += Math.Max(0, reusable - r.CachedTokens);
                }
                if (r.TtftMs is double t)
                {
                    ttft.Add(t);
                }

                itl.AddRange(r.ItlMs);
                if (r.TpotMs is double tp)
                {
                    tpot.Add(tp);
                }

                e2e.Add(r.E2eMs);
            }
            else
            {
                error++;
                string reason = r.ErrorReason ?? "unknown";
                reasons[reason] = reasons.GetValueOrDefault(reason) + 1;
            }
        }

        return new GroupStats
        {
            Requests = issued,
            Ok = ok,
            Error = error,
            NoAnswer = Math.Max(0, issued - ok - error),
            ErrorReasons = reasons,
            TtftMs = Round(LatencySummary.Of(ttft)),
            ItlMs = Round(LatencySummary.Of(itl)),
            TpotMs = Round(LatencySummary.Of(tpot)),
            E2eMs = Round(LatencySummary.Of(e2e)),
            PromptTokens = prompt,
            OutputTokens = output,
            CachedTokens = cached,
            ReprefilledTokens = reprefilled,
            CacheHitRatio = prompt > 0 ? Math.Round((double)cached / prompt, 4) : 0,
            RequestThroughput = Math.Round(ok / elapsed, 3),
            OutputTokenThroughput = Math.Round(output / elapsed, 2),
        };
    }

    private static LatencySummary Round(LatencySummary s) =>
        new(s.Count, Math.Round(s.Mean, 3), Math.Round(s.P50, 3), Math.Round(s.P90, 3), Math.Round(s.P99, 3), Math.Round(s.Max, 3));

    private static Timeline BuildTimeline(IReadOnlyList<RequestResult> results, IEnumerable<string> tenants, double elapsed)
    {
        double bucket = elapsed <= 60 ? 1 : Math.Ceiling(elapsed / 60);
        int n = Math.Max(1, (int)Math.Ceiling(elapsed / bucket));
        var series = new SortedDictionary<string, double[]>(StringComparer.Ordinal);
        foreach (string t in tenants)
        {
            series[t] = new double[n];
        }

        var completed = new double[n];
        foreach (var r in results)
        {
            double end = r.StartSeconds + r.E2eMs / 1000.0;
            int b = Math.Clamp((int)(end / bucket), 0, n - 1);
            series[r.Tenant][b] += r.OutputTokens / bucket;
            if (r.Outcome == Outcome.Ok)
            {
                completed[b] += 1 / bucket;
            }
        }

        return new Timeline(bucket, series, completed);
    }
}
