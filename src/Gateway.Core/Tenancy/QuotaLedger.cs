namespace Gateway.Core.Tenancy;

/// <summary>Which limit refused a reservation.</summary>
public enum QuotaLimit
{
    /// <summary>Nothing refused.</summary>
    None = 0,

    /// <summary>Tokens per minute (sliding window).</summary>
    TokensPerMinute,

    /// <summary>Concurrent requests.</summary>
    Concurrency,

    /// <summary>Total budget.</summary>
    Budget,

    /// <summary>Requests per minute (sliding window).</summary>
    RequestsPerMinute,
}

/// <summary>What an admitted request holds until it settles (amounts reserved on every node of its path).</summary>
public sealed class QuotaReservation
{
    internal QuotaReservation(string[] paths, double tokens, double cost, long windowIndex)
    {
        Paths = paths;
        Tokens = tokens;
        Cost = cost;
        WindowIndex = windowIndex;
    }

    /// <summary>Paths charged (the tenant path and its ancestors).</summary>
    public IReadOnlyList<string> Paths { get; }

    /// <summary>Tokens reserved in the TPM window.</summary>
    public double Tokens { get; }

    /// <summary>Cost reserved against budgets.</summary>
    public double Cost { get; }

    internal long WindowIndex { get; }

    internal bool Settled { get; set; }
}

/// <summary>
/// Tenant quotas: tokens per minute and requests per minute (sliding windows approximated from two fixed windows,
/// <c>used = previous x (1 - elapsed fraction) + current</c>), concurrent requests and total budget (cost units).
/// A request counts once against requests per minute when admitted, whatever it later costs.
/// Reserve on admit with the request's estimate on every node of its path that has a limit (all or nothing);
/// settle with actual usage on completion or cancel. State is keyed by path: a tree reload keeps it.
/// Local to one process; across replicas the windows are shared through the state store (see docs/policies/hfair.md).
/// </summary>
public sealed class QuotaLedger
{
    private readonly Dictionary<string, State> _state = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;
    private readonly long _windowTicks;
    private readonly long _origin;

    /// <summary>Creates a ledger with windows of <paramref name="window"/> (default one minute).</summary>
    public QuotaLedger(TimeProvider time, TimeSpan? window = null)
    {
        _time = time ?? throw new ArgumentNullException(nameof(time));
        _windowTicks = (window ?? TimeSpan.FromMinutes(1)).Ticks;
        _origin = 0;
    }

    /// <summary>Window length.</summary>
    public TimeSpan Window => TimeSpan.FromTicks(_windowTicks);

    /// <summary>Tries to reserve <paramref name="tokens"/> and <paramref name="cost"/> on <paramref name="node"/> and its ancestors.</summary>
    public bool TryReserve(TenantNode node, double tokens, double cost, out QuotaReservation? reservation, out QuotaLimit refusedBy, out TimeSpan? retryAfter, out string? refusedPath)
    {
        ArgumentNullException.ThrowIfNull(node);
        var (index, frac) = Now();
        reservation = null;
        for (var n = node; n is not null; n = n.Parent)
        {
            var q = n.Config.Quota;
            if (q is null)
            {
                continue;
            }

            var s = Get(n.Path);
            s.Roll(index);
            if (q.MaxConcurrent is { } maxC && s.Concurrent + 1 > maxC)
            {
                (refusedBy, retryAfter, refusedPath) = (QuotaLimit.Concurrency, TimeSpan.FromSeconds(1), n.Path);
                return false;
            }

            if (q.Budget is { } budget && s.Spent + cost > budget)
            {
                (refusedBy, retryAfter, refusedPath) = (QuotaLimit.Budget, null, n.Path);
                return false;
            }

            if (q.RequestsPerMinute is { } rpm && s.PreviousRequests * (1 - frac) + s.CurrentRequests + 1 > rpm)
            {
                (refusedBy, retryAfter, refusedPath) = (QuotaLimit.RequestsPerMinute, RetryAfterTokens(s.PreviousRequests, s.CurrentRequests, frac, 1, rpm, Window), n.Path);
                return false;
            }

            if (q.TokensPerMinute is { } tpm)
            {
                var used = s.Previous * (1 - frac) + s.Current;
                if (used + tokens > tpm)
                {
                    (refusedBy, retryAfter, refusedPath) = (QuotaLimit.TokensPerMinute, RetryAfterTpm(s, frac, tokens, tpm), n.Path);
                    return false;
                }
            }
        }

        var paths = new List<string>(4);
        for (var n = node; n is not null; n = n.Parent)
        {
            var s = Get(n.Path);
            s.Roll(index);
            s.Concurrent++;
            s.Spent += cost;
            s.Current += tokens;
            s.CurrentRequests++;
            paths.Add(n.Path);
        }

        reservation = new QuotaReservation([.. paths], tokens, cost, index);
        (refusedBy, retryAfter, refusedPath) = (QuotaLimit.None, null, null);
        return true;
    }

    /// <summary>Replaces a reservation's estimate with actual usage and frees its concurrency slot. Idempotent.</summary>
    public void Settle(QuotaReservation reservation, double actualTokens, double actualCost)
    {
        ArgumentNullException.ThrowIfNull(reservation);
        if (reservation.Settled)
        {
            return;
        }

        reservation.Settled = true;
        var (index, _) = Now();
        var dTokens = actualTokens - reservation.Tokens;
        var dCost = actualCost - reservation.Cost;
        foreach (var path in reservation.Paths)
        {
            var s = Get(path);
            s.Roll(index);
            s.Concurrent = Math.Max(0, s.Concurrent - 1);
            s.Spent = Math.Max(0, s.Spent + dCost);
            if (reservation.WindowIndex == s.Index)
            {
                s.Current = Math.Max(0, s.Current + dTokens);
            }
            else if (reservation.WindowIndex == s.Index - 1)
            {
                s.Previous = Math.Max(0, s.Previous + dTokens);
            }
        }
    }

    /// <summary>Tokens counted in the sliding window of <paramref name="path"/>.</summary>
    public double TokensInWindow(string path)
    {
        var (index, frac) = Now();
        if (!_state.TryGetValue(path, out var s))
        {
            return 0;
        }

        s.Roll(index);
        return s.Previous * (1 - frac) + s.Current;
    }

    /// <summary>Requests admitted in the sliding window of <paramref name="path"/>.</summary>
    public double RequestsInWindow(string path)
    {
        var (index, frac) = Now();
        if (!_state.TryGetValue(path, out var s))
        {
            return 0;
        }

        s.Roll(index);
        return s.PreviousRequests * (1 - frac) + s.CurrentRequests;
    }

    /// <summary>Requests holding a concurrency slot under <paramref name="path"/>.</summary>
    public int ConcurrentOf(string path) => _state.TryGetValue(path, out var s) ? s.Concurrent : 0;

    /// <summary>Budget spent (reserved + settled) under <paramref name="path"/>.</summary>
    public double SpentOf(string path) => _state.TryGetValue(path, out var s) ? s.Spent : 0;

    private TimeSpan RetryAfterTpm(State s, double frac, double tokens, double tpm) =>
        RetryAfterTokens(s.Previous, s.Current, frac, tokens, tpm, Window);

    /// <summary>
    /// When <paramref name="tokens"/> more fit under <paramref name="tpm"/> in the two-window sliding approximation,
    /// assuming nothing else arrives (at least 1 s). Shared by this ledger and the replica-shared (Redis) ledger.
    /// </summary>
    public static TimeSpan RetryAfterTokens(double previous, double current, double fraction, double tokens, double tpm, TimeSpan window)
    {
        if (tokens > tpm)
        {
            return window; // can never fit; tell the client to back off a whole window
        }

        // Assume nothing new arrives: during this window used(f) = prev x (1 - f) + cur.
        if (current + tokens <= tpm && previous > 0)
        {
            var f = 1 - (tpm - tokens - current) / previous;
            return FromFraction(Math.Max(0, f - fraction), window);
        }

        // Next window: used(f) = cur x (1 - f); fits once cur x (1 - f) + tokens <= tpm.
        var g = current > 0 ? 1 - (tpm - tokens) / current : 0;
        return FromFraction(1 - fraction + Math.Max(0, g), window);
    }

    private static TimeSpan FromFraction(double windows, TimeSpan window)
    {
        var t = TimeSpan.FromTicks((long)Math.Ceiling(windows * window.Ticks));
        return t < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : t;
    }

    /// <summary>The current window's index (time / window) and the elapsed fraction of it.</summary>
    public (long Index, double Fraction) WindowPosition() => Now();

    private (long Index, double Fraction) Now()
    {
        var ticks = _time.GetUtcNow().UtcTicks - _origin;
        var index = ticks / _windowTicks;
        return (index, (double)(ticks - index * _windowTicks) / _windowTicks);
    }

    private State Get(string path)
    {
        if (!_state.TryGetValue(path, out var s))
        {
            s = new State();
            _state.Add(path, s);
        }

        return s;
    }

    private sealed class State
    {
        public long Index { get; private set; } = long.MinValue;
        public double Current { get; set; }
        public double Previous { get; set; }
        public double CurrentRequests { get; set; }
        public double PreviousRequests { get; set; }
        public int Concurrent { get; set; }
        public double Spent { get; set; }

        public void Roll(long index)
        {
            if (index == Index)
            {
                return;
            }

            Previous = index == Index + 1 ? Current : 0;
            PreviousRequests = index == Index + 1 ? CurrentRequests : 0;
            Current = 0;
            CurrentRequests = 0;
            Index = index;
        }
    }
}
