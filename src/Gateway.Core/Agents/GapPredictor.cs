using Gateway.Core.Collections;

namespace Gateway.Core.Agents;

/// <summary>A log-normal gap distribution: ln(gap seconds) ~ N(Mu, Sigma²). <see cref="Weight"/> is the evidence behind it.</summary>
public readonly record struct GapDistribution(double Mu, double Sigma, double Weight)
{
    /// <summary>Median gap in seconds.</summary>
    public double Median => Math.Exp(Mu);

    /// <summary>P(gap ≤ t).</summary>
    public double Cdf(double seconds)
    {
        if (seconds <= 0)
        {
            return 0;
        }

        return CdfOfLog(Math.Log(seconds));
    }

    /// <summary>P(gap ≤ e^<paramref name="logSeconds"/>): <see cref="Cdf"/> of a time whose logarithm is known already.</summary>
    public double CdfOfLog(double logSeconds)
    {
        double z = (logSeconds - Mu) / (Sigma * Math.Sqrt(2));
        return 0.5 * (1 + Erf(z));
    }

    /// <summary>The q-quantile in seconds (0 &lt; q &lt; 1).</summary>
    public double Quantile(double q) => Math.Exp(Mu + Sigma * NormalQuantile(q));

    // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7).
    private static double Erf(double x)
    {
        double s = Math.Sign(x);
        x = Math.Abs(x);
        double t = 1 / (1 + 0.3275911 * x);
        double y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.Exp(-x * x);
        return s * y;
    }

    // Acklam's rational approximation of the standard normal quantile.
    private static double NormalQuantile(double p)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(p, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(p, 1.0);
        double[] a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.3577518672690, -30.66479806614716, 2.506628277459239];
        double[] b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
        double[] c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
        double[] d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
        const double low = 0.02425;
        if (p < low)
        {
            double q = Math.Sqrt(-2 * Math.Log(p));
            return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }

        if (p > 1 - low)
        {
            double q = Math.Sqrt(-2 * Math.Log(1 - p));
            return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
        }

        double r = p - 0.5;
        double s = r * r;
        return (((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5]) * r / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1);
    }
}

/// <summary>Knobs of <see cref="GapPredictor"/>.</summary>
public sealed record GapPredictorOptions
{
    /// <summary>Each new observation multiplies older weights by this (0.995 ≈ a half-life of ~140 observations).</summary>
    public double Decay { get; init; } = 0.995;

    /// <summary>Pseudo-observations a level borrows from its parent level (shrinkage strength when data is thin).</summary>
    public double PriorStrength { get; init; } = 5;

    /// <summary>Gaps are clamped to [MinGapSeconds, MaxGapSeconds] before the log.</summary>
    public double MinGapSeconds { get; init; } = 0.05;

    /// <summary>Upper clamp (a day).</summary>
    public double MaxGapSeconds { get; init; } = 86_400;

    /// <summary>Smallest sigma reported (keeps the CDF from becoming a step on a few equal samples).</summary>
    public double MinSigma { get; init; } = 0.25;

    /// <summary>
    /// Most (tenant, agent, tool) keys kept (new keys beyond it only feed the coarser levels), and most sessions' own
    /// levels kept (the least recently observed session is forgotten first).
    /// </summary>
    public int MaxKeys { get; init; } = 10_000;

    /// <summary>Global prior of tool gaps: WEKA Claude Code traces, median 9 s, p90 71 s.</summary>
    public GapDistribution ToolPrior { get; init; } = new(Math.Log(9), Math.Log(71.0 / 9.0) / 1.2815515655, 0);

    /// <summary>Global prior of human gaps: median 210 s, p90 2,980 s.</summary>
    public GapDistribution HumanPrior { get; init; } = new(Math.Log(210), Math.Log(2980.0 / 210.0) / 1.2815515655, 0);
}

/// <summary>
/// Online gap predictor (issue 7; log-normal inter-turn gaps as in llm-d PR #2928, per-tool distributions as in
/// Continuum). Keeps exponentially decayed moments of ln(gap) per (gap kind, tenant, agent kind, tool) and per coarser
/// level (tenant+agent, tenant, global). A prediction walks from the global prior down to the most specific level,
/// each level shrunk toward its parent with <see cref="GapPredictorOptions.PriorStrength"/> pseudo-observations, so
/// thin data falls back up the hierarchy (tool → agent kind → tenant → global prior) smoothly. Not thread-safe.
/// </summary>
public sealed class GapPredictor
{
    private readonly GapPredictorOptions _o;
    private readonly Dictionary<(GapKind, string, string, string), Moments> _levels = [];

    // Each session's own level: the least recently observed sessions are forgotten first (and, with an age bound, those
    // not observed for that long), so new sessions keep learning however many a gateway has seen.
    private readonly BoundedMap<(GapKind, string, string), Moments> _sessions;

    /// <summary>
    /// Creates a predictor; a session's own level is kept at most <paramref name="maxSessionIdle"/> after its last
    /// observation (with <paramref name="time"/>; null: bounded by <see cref="GapPredictorOptions.MaxKeys"/> only).
    /// </summary>
    public GapPredictor(GapPredictorOptions? options = null, TimeProvider? time = null, TimeSpan? maxSessionIdle = null)
    {
        _o = options ?? new GapPredictorOptions();
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_o.Decay, 0.0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(_o.Decay, 1.0);
        _sessions = new(Math.Max(1, _o.MaxKeys), time: time, maxIdle: maxSessionIdle);
    }

    /// <summary>Sessions whose own level is held now.</summary>
    public int SessionLevels => _sessions.Count;

    /// <summary>Observations recorded.</summary>
    public long Observations { get; private set; }

    /// <summary>Records one gap (seconds) that closed.</summary>
    public void Observe(GapKind kind, string tenant, string agentKind, string tool, double gapSeconds, string? session = null)
    {
        if (double.IsNaN(gapSeconds))
        {
            return;
        }

        double x = Math.Log(Math.Clamp(gapSeconds, _o.MinGapSeconds, _o.MaxGapSeconds));
        Observations++;
        Level(kind, "", "", "", true)?.Add(x, _o.Decay);
        Level(kind, tenant, "", "", true)?.Add(x, _o.Decay);
        Level(kind, tenant, agentKind, "", true)?.Add(x, _o.Decay);
        Level(kind, tenant, agentKind, tool, true)?.Add(x, _o.Decay);
        if (session is not null)
        {
            var key = (kind, tenant, session);
            if (!_sessions.TryGetValue(key, out var own))
            {
                own = new Moments();
            }

            own.Add(x, _o.Decay);
            _sessions.Set(key, own); // the most recently observed
        }
    }

    /// <summary>Forgets a finished session's own moments.</summary>
    public void ForgetSession(string tenant, string session)
    {
        _sessions.Remove((GapKind.Tool, tenant, session));
        _sessions.Remove((GapKind.Human, tenant, session));
    }

    /// <summary>The predicted gap distribution for the most specific level, shrunk toward coarser levels.</summary>
    public GapDistribution Predict(GapKind kind, string tenant, string agentKind, string tool, string? session = null)
    {
        var prior = kind == GapKind.Tool ? _o.ToolPrior : _o.HumanPrior;
        double mu = prior.Mu, var = prior.Sigma * prior.Sigma, weight = 0;
        Shrink(Level(kind, "", "", "", false), ref mu, ref var, ref weight);
        Shrink(Level(kind, tenant, "", "", false), ref mu, ref var, ref weight);
        Shrink(Level(kind, tenant, agentKind, "", false), ref mu, ref var, ref weight);
        Shrink(Level(kind, tenant, agentKind, tool, false), ref mu, ref var, ref weight);
        if (session is not null && _sessions.TryGetValue((kind, tenant, session), out var own))
        {
            Shrink(own, ref mu, ref var, ref weight);
        }

        return new GapDistribution(mu, Math.Max(_o.MinSigma, Math.Sqrt(var)), weight);
    }

    private void Shrink(Moments? m, ref double mu, ref double var, ref double weight)
    {
        if (m is null || m.W <= 0)
        {
            return;
        }

        double k = _o.PriorStrength;
        double n = m.W;
        double mean = m.Sx / n;
        double v = Math.Max(0, m.Sxx / n - mean * mean);
        double newMu = (n * mean + k * mu) / (n + k);

        // Pooled second moment about the new mean (parent counts as k pseudo-observations).
        double newVar = (n * (v + (mean - newMu) * (mean - newMu)) + k * (var + (mu - newMu) * (mu - newMu))) / (n + k);
        mu = newMu;
        var = newVar;
        weight = n;
    }

    private Moments? Level(GapKind kind, string tenant, string agent, string tool, bool create)
    {
        var key = (kind, tenant, agent, tool);
        if (_levels.TryGetValue(key, out var m))
        {
            return m;
        }

        if (!create || _levels.Count >= _o.MaxKeys)
        {
            return null;
        }

        m = new Moments();
        _levels.Add(key, m);
        return m;
    }

    private sealed class Moments
    {
        public double W, Sx, Sxx;

        public void Add(double x, double decay)
        {
            W = W * decay + 1;
            Sx = Sx * decay + x;
            Sxx = Sxx * decay + x * x;
        }
    }
}
