using Gateway.Core.Collections;

namespace Gateway.Core.Agents;

/// <summary>
/// Shared bookkeeping of the retention policies: the open gap of each session, the live pins of each worker (for the
/// per-worker budget by value per block) and the shadow-mode score. Pins expire by their TTL on the worker; the book
/// forgets them lazily at the same instant. Open gaps are bounded (<c>maxOpenGaps</c>): a session that never comes back
/// (the client just stopped) is forgotten oldest first, scored like an abandoned gap, and with <c>maxGapAge</c> so is a
/// gap open for longer than that; with <c>singleTurnGapAge</c> the gap after a session's first turn
/// (<see cref="TurnCompletion.SessionTurn"/> = 1) is forgotten after that shorter age unless its pin lasts longer (a
/// renewal past it gives the gap the full age). With <c>trackExpiry</c> the book
/// also keeps its live pins ordered by expiry (<see cref="NextExpiry"/>, <see cref="TakeExpiring"/>) for a policy that
/// renews pins; stale entries (released, re-opened or renewed gaps) are skipped lazily and the heap is rebuilt when they
/// outnumber the open gaps, so it stays bounded.
/// </summary>
internal sealed class GapBook
{
    private readonly TimeProvider _time;
    private readonly double _budgetFraction;
    private readonly BoundedMap<string, OpenGap> _open;
    private readonly Dictionary<int, Dictionary<string, OpenGap>> _pins = [];
    private readonly List<OpenGap> _scratch = [];
    private readonly PriorityQueue<(OpenGap Gap, double Ttl), DateTimeOffset>? _expiry;

    public GapBook(TimeProvider time, double budgetFraction, int maxOpenGaps = 65_536, bool trackExpiry = false, TimeSpan? maxGapAge = null,
        TimeSpan? singleTurnGapAge = null)
    {
        ArgumentNullException.ThrowIfNull(time);
        _time = time;
        _budgetFraction = budgetFraction;
        _expiry = trackExpiry ? new() : null;
        _open = new BoundedMap<string, OpenGap>(maxOpenGaps, StringComparer.Ordinal, evicted: (_, gap) => Abandon(gap, _time.GetUtcNow()),
            time: time, maxIdle: maxGapAge, briefIdle: singleTurnGapAge);
    }

    public RetentionStats Stats { get; } = new();

    public int OpenGaps => _open.Count;

    /// <summary>Entries in the expiry order (live and stale; for tests of its bound).</summary>
    internal int ExpiryEntries => _expiry?.Count ?? 0;

    /// <summary>Blocks the book believes are pinned on <paramref name="worker"/> now.</summary>
    public int PinnedBlocks(int worker)
    {
        if (!_pins.TryGetValue(worker, out var pins))
        {
            return 0;
        }

        Expire(pins, _time.GetUtcNow());
        int sum = 0;
        foreach (var p in pins.Values)
        {
            sum += p.Turn.Blocks;
        }

        return sum;
    }

    /// <summary>Opens the gap after <paramref name="turn"/>; an older still-open gap of the session is abandoned.</summary>
    public void Open(TurnCompletion turn, double ttlSeconds, double value, double predictedMedian)
    {
        var now = _time.GetUtcNow();
        if (_open.TryGetValue(turn.SessionId, out var old))
        {
            Abandon(old, now);
        }

        var gap = new OpenGap(turn, now, ttlSeconds, value, predictedMedian);
        _open.Set(turn.SessionId, gap, Brief(gap));
        if (ttlSeconds > 0)
        {
            Stats.Retains++;
            if (!_pins.TryGetValue(turn.Worker, out var pins))
            {
                _pins[turn.Worker] = pins = new Dictionary<string, OpenGap>(StringComparer.Ordinal);
            }

            pins[turn.SessionId] = gap;
            TrackExpiry(gap);
        }
    }

    /// <summary>Expiry of the earliest live pin (null: none, or expiry not tracked).</summary>
    public DateTimeOffset? NextExpiry
    {
        get
        {
            if (_expiry is null)
            {
                return null;
            }

            while (_expiry.TryPeek(out var e, out var at))
            {
                if (IsLive(e.Gap, e.Ttl))
                {
                    return at;
                }

                _expiry.Dequeue();
            }

            return null;
        }
    }

    /// <summary>Removes the live pins expiring at or before <paramref name="dueBy"/> from the expiry order into <paramref name="into"/>.</summary>
    public void TakeExpiring(DateTimeOffset dueBy, List<OpenGap> into)
    {
        if (_expiry is null)
        {
            return;
        }

        while (_expiry.TryPeek(out var e, out var at) && at <= dueBy)
        {
            _expiry.Dequeue();
            if (IsLive(e.Gap, e.Ttl))
            {
                into.Add(e.Gap);
            }
        }
    }

    /// <summary>True while <paramref name="gap"/> is its session's open gap and still pinned (not released or evicted).</summary>
    public bool IsPinned(OpenGap gap) => gap.Retained && _open.TryGetValue(gap.Turn.SessionId, out var g) && ReferenceEquals(g, gap);

    /// <summary>
    /// Extends a live pin: its TTL (from the gap's opening, so the pin stays one continuous pin for the score) becomes
    /// <paramref name="ttlSeconds"/> and its value <paramref name="value"/>.
    /// </summary>
    public void Renew(OpenGap gap, double ttlSeconds, double value)
    {
        bool wasBrief = Brief(gap);
        gap.TtlSeconds = ttlSeconds;
        gap.Value = value;
        gap.Renewals++;
        Stats.Renewals++;
        if (wasBrief && !Brief(gap) && IsPinned(gap))
        {
            _open.Set(gap.Turn.SessionId, gap); // the pin now outlasts the single-turn age: the gap keeps the full one
        }

        TrackExpiry(gap);
    }

    private static bool IsFirstTurn(OpenGap gap) => gap.Turn.SessionTurn == 1;

    // A first turn's gap is kept the single-turn age, unless its pin lasts longer.
    private bool Brief(OpenGap gap) => IsFirstTurn(gap) && _open.BriefIdle is { } brief && gap.TtlSeconds <= brief.TotalSeconds;

    private bool IsLive(OpenGap gap, double ttl) => gap.TtlSeconds == ttl && IsPinned(gap);

    private void TrackExpiry(OpenGap gap)
    {
        if (_expiry is null)
        {
            return;
        }

        if (_expiry.Count > 2 * _open.Count + 64)
        {
            // Mostly stale entries: rebuild from the live pins (amortised O(1) per entry).
            var live = new List<((OpenGap, double), DateTimeOffset)>();
            while (_expiry.TryDequeue(out var e, out var at))
            {
                if (IsLive(e.Gap, e.Ttl))
                {
                    live.Add((e, at));
                }
            }

            _expiry.EnqueueRange(live);
        }

        _expiry.Enqueue((gap, gap.TtlSeconds), gap.OpenedAt.AddSeconds(gap.TtlSeconds));
    }

    /// <summary>Closes the session's open gap (its next turn arrived); <see cref="ClosedGap.None"/> if none was open.</summary>
    /// <remarks>
    /// With <paramref name="priorTurns"/> and the gap's turn's <see cref="TurnCompletion.PriorTurns"/> both known and the
    /// arrival more than one model turn ahead, the gap is superseded instead (turns served elsewhere): removed with its pin
    /// (no hit, no miss, no block-seconds: whether it was used is unknown here) and counted in
    /// <see cref="RetentionStats.Superseded"/>. Fewer turns than expected (a client that compacted its history) close it
    /// as usual.
    /// </remarks>
    public ClosedGap Close(string sessionId, int priorTurns, out TurnCompletion? turn, out double predictedMedian)
    {
        turn = null;
        predictedMedian = double.NaN;
        if (!_open.Remove(sessionId, out var gap))
        {
            return ClosedGap.None;
        }

        if (priorTurns >= 0 && gap.Turn.PriorTurns >= 0 && priorTurns > gap.Turn.PriorTurns + 1)
        {
            Stats.Superseded++;
            if (gap.Retained)
            {
                RemovePin(gap);
            }

            return ClosedGap.None;
        }

        var now = _time.GetUtcNow();
        double seconds = Math.Max(0, (now - gap.OpenedAt).TotalSeconds);
        turn = gap.Turn;
        predictedMedian = gap.PredictedMedian;
        Stats.GapsClosed++;
        if (gap.Turn.Outcome.Gap == GapKind.Tool)
        {
            Stats.ToolGapsClosed++;
        }

        bool pinned = false;
        if (gap.Retained)
        {
            double blocks = gap.Turn.Blocks;
            if (seconds <= gap.TtlSeconds)
            {
                pinned = true;
                Stats.Hits++;
                Stats.PinnedBlockSeconds += blocks * seconds;
                Stats.SavedPrefillSeconds += gap.Turn.PrefillSeconds;
            }
            else
            {
                Stats.Misses++;
                Stats.PinnedBlockSeconds += blocks * gap.TtlSeconds;
                Stats.UnusedBlockSeconds += blocks * gap.TtlSeconds;
            }

            RemovePin(gap);
        }
        else if (gap.Turn.Outcome.Gap == GapKind.Tool)
        {
            Stats.Uncovered++;
        }

        return new ClosedGap(true, gap.Turn.Outcome.Gap, seconds, pinned);
    }

    /// <summary>Ends the session's open gap without a return (session over, or the planner released it).</summary>
    public void Abandon(string sessionId)
    {
        if (_open.Remove(sessionId, out var gap))
        {
            Abandon(gap, _time.GetUtcNow());
        }
    }

    /// <summary>
    /// Makes room on the turn's worker for <paramref name="blocks"/> worth <paramref name="valuePerBlock"/> each: evicts
    /// live pins of lower value per block (appending their releases) while that helps; false (nothing evicted) if even
    /// evicting all of them would not fit the budget.
    /// </summary>
    public bool MakeRoom(TurnCompletion turn, double valuePerBlock, List<RetentionAction> actions)
    {
        int budget = (int)Math.Floor(turn.WorkerKvBlocks * _budgetFraction);
        if (turn.Blocks > budget)
        {
            return false;
        }

        if (!_pins.TryGetValue(turn.Worker, out var pins))
        {
            return true;
        }

        var now = _time.GetUtcNow();
        Expire(pins, now);
        int used = 0;
        int evictable = 0;
        _scratch.Clear();
        foreach (var p in pins.Values)
        {
            if (p.Turn.SessionId == turn.SessionId)
            {
                continue; // replaced by the new pin
            }

            used += p.Turn.Blocks;
            if (p.Value / Math.Max(1, p.Turn.Blocks) < valuePerBlock)
            {
                evictable += p.Turn.Blocks;
                _scratch.Add(p);
            }
        }

        if (used + turn.Blocks <= budget)
        {
            return true;
        }

        if (used - evictable + turn.Blocks > budget)
        {
            return false;
        }

        _scratch.Sort(static (a, b) => (a.Value / Math.Max(1, a.Turn.Blocks)).CompareTo(b.Value / Math.Max(1, b.Turn.Blocks)));
        foreach (var victim in _scratch)
        {
            if (used + turn.Blocks <= budget)
            {
                break;
            }

            used -= victim.Turn.Blocks;
            actions.Add(new RetentionAction(RetentionActionKind.Release, victim.Turn.SessionId, victim.Turn.Worker, 0, 0, 0));
            Stats.Releases++;
            Stats.BudgetEvictions++;
            Unpin(victim, now);
        }

        return true;
    }

    /// <summary>
    /// The worker dropped the session's pin (memory pressure): it ends unused now and frees its budget share; false when
    /// the session's open gap holds no live pin on <paramref name="worker"/> (already closed, released, expired or moved).
    /// </summary>
    public bool Dropped(string sessionId, int worker)
    {
        var now = _time.GetUtcNow();
        if (!_open.TryGetValue(sessionId, out var gap) || !gap.Retained || gap.Turn.Worker != worker || gap.OpenedAt.AddSeconds(gap.TtlSeconds) <= now)
        {
            return false;
        }

        Stats.EngineDrops++;
        Unpin(gap, now);
        return true;
    }

    // Ends a live pin before its return (budget eviction, engine drop): scored unused for the time it was held; the gap
    // stays observable, re-opened unretained, so the return is still learnt from.
    private void Unpin(OpenGap gap, DateTimeOffset now)
    {
        if (_open.Remove(gap.Turn.SessionId))
        {
            Abandon(gap, now);
        }

        var unpinned = gap with { TtlSeconds = 0, Value = 0, OpenedAt = gap.OpenedAt };
        _open.Set(gap.Turn.SessionId, unpinned, Brief(unpinned));
    }

    private void Abandon(OpenGap gap, DateTimeOffset now)
    {
        if (!gap.Retained)
        {
            return;
        }

        double held = Math.Min(gap.TtlSeconds, Math.Max(0, (now - gap.OpenedAt).TotalSeconds));
        Stats.Misses++;
        Stats.PinnedBlockSeconds += gap.Turn.Blocks * held;
        Stats.UnusedBlockSeconds += gap.Turn.Blocks * held;
        RemovePin(gap);
    }

    private void RemovePin(OpenGap gap)
    {
        if (_pins.TryGetValue(gap.Turn.Worker, out var pins) && pins.TryGetValue(gap.Turn.SessionId, out var p) && ReferenceEquals(p, gap))
        {
            pins.Remove(gap.Turn.SessionId);
        }
    }

    private static void Expire(Dictionary<string, OpenGap> pins, DateTimeOffset now)
    {
        List<string>? dead = null;
        foreach (var (id, p) in pins)
        {
            if (p.OpenedAt.AddSeconds(p.TtlSeconds) <= now)
            {
                (dead ??= []).Add(id);
            }
        }

        if (dead is not null)
        {
            foreach (var id in dead)
            {
                pins.Remove(id);
            }
        }
    }

    internal sealed record OpenGap(TurnCompletion Turn, DateTimeOffset OpenedAt, double TtlSeconds, double Value, double PredictedMedian)
    {
        /// <summary>Seconds from <see cref="OpenedAt"/> the pin holds (0: not pinned); a renewal extends it.</summary>
        public double TtlSeconds { get; set; } = TtlSeconds;

        /// <summary>Value sent with the pin (refreshed by a renewal).</summary>
        public double Value { get; set; } = Value;

        /// <summary>Times the pin was renewed.</summary>
        public int Renewals { get; set; }

        public bool Retained => TtlSeconds > 0;
    }
}
