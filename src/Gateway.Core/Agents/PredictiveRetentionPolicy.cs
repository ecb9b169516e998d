namespace Gateway.Core.Agents;

/// <summary>
/// Ours (issue 7, after Continuum arXiv 2511.02230 and llm-d PR #2928): when a gap opens, the gap distribution of
/// (tenant, agent kind, tool[, session]) from <see cref="GapPredictor"/> gives P(return ≤ t); the TTL maximises
/// P(return ≤ t)·saved − cost·t with saved = the context's prefill seconds and cost = MemoryCostWeight × the pool share
/// the pin holds; value = P(return ≤ TTL)·saved. No positive optimum (e.g. a human gap) → release. Each worker's pins
/// stay under PinBudgetFraction of its blocks, the lowest value per block evicted first. Every closed gap is an
/// observation. Renewal (optimal stopping, <see cref="RetentionOptions.MaxRenewals"/>): when a pin's TTL x runs out and the
/// session has not come back, the TTL is re-decided with the conditional distribution, t' maximising
/// P(x &lt; gap ≤ x+t' | gap &gt; x)·saved − cost·t' (a log-normal's hazard can exceed its density, so a long-tailed gap
/// may deserve more time once it has lasted x); renew with value = that probability·saved if positive and the budget
/// has room, else let the pin lapse. The total TTL stays ≤ MaxTtlSeconds. Eviction-age pricing
/// (<see cref="RetentionOptions.EvictionAge"/>, off by default): with the worker's measured eviction age T_c, returns within
/// T_c are not credited (the LRU keeps the context that long anyway) and only the residency the pin adds is charged
/// (<see cref="EvictionAgeMode"/>); renewal is priced the same way from the held time x (without renewal the context
/// stays to x + T_c under Shift, to max(x, T_c) under Cover). Knobs: <see cref="RetentionOptions"/>.
/// </summary>
public sealed class PredictiveRetentionPolicy : IRetentionPolicy
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "predictive";

    private readonly GapBook _book;
    private readonly GapPredictor _predictor;
    private readonly RetentionOptions _o;
    private readonly TimeProvider _time;
    private readonly double[] _grid;
    private readonly double[] _logGrid; // ln of each grid point: a fresh pin's CDF needs no logarithm per point
    private readonly List<GapBook.OpenGap> _expiring = [];
    private readonly PinGuard _guard;

    /// <summary>Creates the policy.</summary>
    public PredictiveRetentionPolicy(TimeProvider time, RetentionOptions? options = null)
    {
        _o = options ?? new RetentionOptions();
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(_o.MinTtlSeconds, 0.0);
        ArgumentOutOfRangeException.ThrowIfLessThan(_o.MaxTtlSeconds, _o.MinTtlSeconds);
        ArgumentOutOfRangeException.ThrowIfNegative(_o.MaxRenewals);
        _time = time;
        _guard = new PinGuard(time);
        _book = new GapBook(time, _o.PinBudgetFraction, _o.MaxOpenGaps, trackExpiry: _o.MaxRenewals > 0, maxGapAge: _o.MaxSessionIdle, singleTurnGapAge: _o.MaxSingleTurnIdle);
        _predictor = new GapPredictor(_o.Predictor, time, _o.MaxSessionIdle);
        const int points = 96;
        _grid = new double[points];
        _logGrid = new double[points];
        double ratio = Math.Pow(_o.MaxTtlSeconds / _o.MinTtlSeconds, 1.0 / (points - 1));
        for (int i = 0; i < points; i++)
        {
            _grid[i] = _o.MinTtlSeconds * Math.Pow(ratio, i);
            _logGrid[i] = Math.Log(_grid[i]);
        }
    }

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public RetentionStats Stats => _book.Stats;

    /// <summary>The predictor (for inspection and tests).</summary>
    public GapPredictor Predictor => _predictor;

    /// <summary>
    /// Continuum's rule on a log-spaced grid: the TTL maximising P(gap ≤ t)·saved − costPerSecond·t, and P at it; (0, 0) when
    /// no TTL has a positive net benefit.
    /// </summary>
    public (double TtlSeconds, double Probability) BestTtl(GapDistribution gap, double savedSeconds, double costPerSecond) =>
        BestRenewal(gap, 0, savedSeconds, costPerSecond, double.PositiveInfinity); // nothing held yet: P(gap ≤ t | gap > 0) = P(gap ≤ t)

    /// <summary>
    /// <see cref="BestTtl(GapDistribution, double, double)"/> priced by the worker's eviction age T_c under
    /// <see cref="RetentionOptions.EvictionAge"/>: the TTL maximising the net benefit of what the pin adds over the LRU, and
    /// the probability credited at it (a return the LRU alone would have missed); (0, 0) when nothing is worth pinning
    /// (T_c = +∞: the LRU keeps everything).
    /// </summary>
    public (double TtlSeconds, double Probability) BestTtl(GapDistribution gap, double savedSeconds, double costPerSecond, double evictionAgeSeconds) =>
        BestRenewal(gap, 0, savedSeconds, costPerSecond, double.PositiveInfinity, evictionAgeSeconds);

    /// <summary>
    /// The renewal rule for a pin that has held <paramref name="heldSeconds"/> (x) with no return: the extension t ≤
    /// <paramref name="maxExtraSeconds"/> maximising P(x &lt; gap ≤ x+t | gap &gt; x)·saved − costPerSecond·t, and that
    /// conditional probability; (0, 0) when no extension has a positive net benefit.
    /// </summary>
    public (double ExtraSeconds, double Probability) BestRenewal(GapDistribution gap, double heldSeconds, double savedSeconds, double costPerSecond, double maxExtraSeconds) =>
        BestRenewal(gap, heldSeconds, savedSeconds, costPerSecond, maxExtraSeconds, double.NaN);

    /// <summary>
    /// The renewal rule priced by the eviction age T_c (<paramref name="evictionAgeSeconds"/>; NaN, ≤ 0 or mode
    /// <see cref="EvictionAgeMode.Off"/>: as without it). Without the extension the LRU keeps the context to x + T_c
    /// (<see cref="EvictionAgeMode.Shift"/>) or max(x, T_c) (<see cref="EvictionAgeMode.Cover"/>); an extension t is credited
    /// only with the returns after that and charged only for the residency it adds.
    /// </summary>
    public (double ExtraSeconds, double Probability) BestRenewal(GapDistribution gap, double heldSeconds, double savedSeconds, double costPerSecond, double maxExtraSeconds, double evictionAgeSeconds)
    {
        double f0 = gap.Cdf(heldSeconds);
        double survive = 1 - f0;
        if (survive < 1e-9)
        {
            return (0, 0);
        }

        var mode = _o.EvictionAge;
        double tc = evictionAgeSeconds;
        if (mode == EvictionAgeMode.Off || double.IsNaN(tc) || tc <= 0)
        {
            mode = EvictionAgeMode.Off;
            tc = 0;
        }
        else if (double.IsPositiveInfinity(tc))
        {
            return (0, 0); // nothing is evicted: a pin saves nothing
        }

        // Where the context stays without this pin (relative to the gap's start) and P(return by then).
        double kept = mode switch
        {
            EvictionAgeMode.Shift => heldSeconds + tc,
            EvictionAgeMode.Cover => Math.Max(heldSeconds, tc),
            _ => heldSeconds,
        };
        double fKept = mode == EvictionAgeMode.Off ? f0 : gap.Cdf(kept);

        // No extension is credited more than pMax, and the charge only grows along the grid: once pMax·saved − charge
        // cannot beat the best so far, no later point can either (the answer is the full scan's, found sooner).
        double pMax = Math.Max(0, 1 - fKept) / survive;
        bool prune = savedSeconds >= 0 && costPerSecond >= 0;
        bool fresh = mode == EvictionAgeMode.Off && heldSeconds == 0; // until = t: its logarithm is precomputed
        double best = 0, bestT = 0, bestP = 0;
        for (int i = 0; i < _grid.Length; i++)
        {
            double t = _grid[i];
            if (t > maxExtraSeconds)
            {
                break;
            }

            // With the pin the context stays to x + t (+ T_c under Shift); charged for the residency beyond `kept`.
            double charged = mode == EvictionAgeMode.Cover ? Math.Max(0, heldSeconds + t - kept) : t;
            if (prune && pMax * savedSeconds - costPerSecond * charged <= best)
            {
                break;
            }

            double until = mode == EvictionAgeMode.Shift ? heldSeconds + t + tc : heldSeconds + t;
            double p = Math.Max(0, (fresh ? gap.CdfOfLog(_logGrid[i]) : gap.Cdf(until)) - fKept) / survive;
            double net = p * savedSeconds - costPerSecond * charged;
            if (net > best)
            {
                best = net;
                bestT = t;
                bestP = p;
            }
        }

        return (bestT, bestP);
    }

    /// <inheritdoc />
    public void OnTurnCompleted(TurnCompletion turn, List<RetentionAction> actions)
    {
        ArgumentNullException.ThrowIfNull(turn);
        ArgumentNullException.ThrowIfNull(actions);
        if (turn.SessionEnded)
        {
            actions.Add(new RetentionAction(RetentionActionKind.Release, turn.SessionId, turn.Worker, 0, 0, 0));
            _book.Stats.Releases++;
            _book.Abandon(turn.SessionId);
            if (_o.PerSessionLevel)
            {
                _predictor.ForgetSession(turn.Tenant, turn.SessionId);
            }

            return;
        }

        _guard.Account(turn.Worker, turn.WorkerPinCostBlocks, turn.WorkerPinSavedBlocks);
        var o = turn.Outcome;
        string? session = _o.PerSessionLevel ? turn.SessionId : null;
        var dist = _predictor.Predict(o.Gap, turn.Tenant, turn.AgentKind, o.Tool, session);
        if (turn.WorkerHostKvBlocks > 0)
        {
            // A host tier keeps what HBM cannot: no pin; prefetch before the predicted return.
            _book.Open(turn, 0, 0, dist.Median);
            if (TierPlacement.Decide(turn, dist) is { } prefetch)
            {
                _book.Stats.HostRetains++;
                actions.Add(prefetch);
            }

            return;
        }

        if (!_o.HbmPins)
        {
            // HBM only and HBM pins off: the LRU keeps the context, as with `off`; the gap is still scored.
            _book.Open(turn, 0, 0, dist.Median);
            return;
        }

        // A context larger than the worker's pin budget is pinned as its leading prefix (what a return reuses first).
        int budget = (int)Math.Floor(turn.WorkerKvBlocks * _o.PinBudgetFraction);
        int blocks = Math.Min(turn.Blocks, budget);
        if (blocks < turn.Blocks && blocks > 0)
        {
            turn = turn with { Blocks = blocks, PrefillSeconds = turn.PrefillSeconds * blocks / turn.Blocks };
        }

        double share = turn.WorkerKvBlocks > 0 ? (double)blocks / turn.WorkerKvBlocks : 1;
        var (ttl, p) = blocks > 0 ? BestTtl(dist, turn.PrefillSeconds, _o.MemoryCostWeight * share, turn.EvictionAgeSeconds) : (0, 0);
        double value = p * turn.PrefillSeconds;
        if (ttl > 0 && _o.PinGuard && !_guard.Allows(turn.Worker))
        {
            _book.Stats.GuardSkips++;
            ttl = 0;
        }

        if (ttl > 0 && !_book.MakeRoom(turn, value / blocks, actions))
        {
            _book.Stats.BudgetSkipped++;
            ttl = 0;
        }

        if (ttl <= 0)
        {
            _book.Stats.Skipped++;
            _book.Stats.Releases++;
            actions.Add(new RetentionAction(RetentionActionKind.Release, turn.SessionId, turn.Worker, 0, 0, 0));
            _book.Open(turn, 0, 0, dist.Median);
            return;
        }

        _book.Open(turn, ttl, value, dist.Median);
        actions.Add(new RetentionAction(RetentionActionKind.Retain, turn.SessionId, turn.Worker, (long)Math.Ceiling(ttl * 1000), value, 0, blocks));
    }

    /// <inheritdoc />
    public ClosedGap OnTurnArrived(string sessionId, int priorTurns = -1)
    {
        var closed = _book.Close(sessionId, priorTurns, out var turn, out double median);
        double gap = closed.Seconds;
        if (turn is not null && closed.Pinned)
        {
            _guard.Outcome(turn.Worker, dropped: false);
        }

        if (turn is not null && closed.Closed)
        {
            var o = turn.Outcome;
            if (o.Gap == GapKind.Tool && median > 0)
            {
                _book.Stats.AbsLogErrorSum += Math.Abs(Math.Log(Math.Max(gap, 0.05) / median));
                _book.Stats.AbsLogErrorCount++;
            }

            _predictor.Observe(o.Gap, turn.Tenant, turn.AgentKind, o.Tool, gap, _o.PerSessionLevel ? turn.SessionId : null);
        }

        return closed;
    }

    /// <inheritdoc />
    public DateTimeOffset? NextPinExpiry => _book.NextExpiry;

    /// <inheritdoc />
    public void OnPinsExpiring(DateTimeOffset dueBy, List<RetentionAction> actions)
    {
        ArgumentNullException.ThrowIfNull(actions);
        if (_o.MaxRenewals == 0)
        {
            return;
        }

        var now = _time.GetUtcNow();
        _expiring.Clear();
        _book.TakeExpiring(dueBy, _expiring);
        foreach (var gap in _expiring)
        {
            // Earlier renewals in this batch may have evicted it; a pin already past its TTL is gone on the worker.
            double held = gap.TtlSeconds;
            var expiresAt = gap.OpenedAt.AddSeconds(held);
            if (!_book.IsPinned(gap) || expiresAt <= now || gap.Renewals >= _o.MaxRenewals)
            {
                continue;
            }

            var turn = gap.Turn;
            var o = turn.Outcome;
            var dist = _predictor.Predict(o.Gap, turn.Tenant, turn.AgentKind, o.Tool, _o.PerSessionLevel ? turn.SessionId : null);
            double share = turn.WorkerKvBlocks > 0 ? (double)turn.Blocks / turn.WorkerKvBlocks : 1;
            var (extra, p) = BestRenewal(dist, held, turn.PrefillSeconds, _o.MemoryCostWeight * share, _o.MaxTtlSeconds - held, turn.EvictionAgeSeconds);
            double value = p * turn.PrefillSeconds;
            if (extra <= 0 || !_book.MakeRoom(turn, value / Math.Max(1, turn.Blocks), actions))
            {
                continue; // lapses at its TTL; the book scores it when the gap closes
            }

            _book.Renew(gap, held + extra, value);
            double ttlFromNow = (expiresAt - now).TotalSeconds + extra;
            actions.Add(new RetentionAction(RetentionActionKind.Retain, turn.SessionId, turn.Worker, (long)Math.Ceiling(ttlFromNow * 1000), value, 0, turn.Blocks));
        }

        _expiring.Clear();
    }

    /// <inheritdoc />
    public void OnPinDropped(string sessionId, int worker)
    {
        if (_book.Dropped(sessionId, worker))
        {
            _guard.Outcome(worker, dropped: true);
        }
    }
}
