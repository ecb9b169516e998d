namespace Gateway.Core.Agents;

/// <summary>
/// The guard that keeps HBM pins from making a worker worse than doing nothing. Per worker it watches two signals and
/// sends no HBM pins (the context is left to the LRU: `off`'s behaviour) while either says the pins are losing:
/// <list type="bullet">
/// <item><b>Drops</b>: an exponentially weighted share of recent pins the engine dropped under pressure (the pin held memory
/// that running work then needed). Above <see cref="MaxDropShare"/> after <see cref="MinOutcomes"/> outcomes; each decision
/// refused decays the share, so the worker is tried again later.</item>
/// <item><b>Net effect</b>: the worker's own account of what pins cost and saved against its prefix cache without pins
/// (<see cref="TurnCompletion.WorkerPinCostBlocks"/>: blocks recomputed that plain LRU would still have held, i.e. other
/// contexts the pins pushed out; <see cref="TurnCompletion.WorkerPinSavedBlocks"/>: blocks hit that plain LRU would have
/// evicted). Both are summed with a half-life of <see cref="LedgerHalfLifeSeconds"/>; pins lose while the cost exceeds
/// the saving by <see cref="MinNetLossBlocks"/> or more. Refusing sends no new pins, the sums decay, and pinning
/// resumes once the net loss is below that floor.</item>
/// </list>
/// Pure: time from the <see cref="TimeProvider"/>.
/// </summary>
public sealed class PinGuard(TimeProvider time)
{
    /// <summary>Share of dropped pins above which the guard backs off.</summary>
    public const double MaxDropShare = 0.2;

    /// <summary>Outcomes seen before the guard judges a worker's drops.</summary>
    public const int MinOutcomes = 8;

    /// <summary>Decayed blocks by which the pins' cost must exceed their saving before the guard backs off (4,096 tokens of 16).</summary>
    public const double MinNetLossBlocks = 256;

    /// <summary>Half-life of the displacement account.</summary>
    public const double LedgerHalfLifeSeconds = 600;

    private const double Alpha = 0.1;
    private const double ProbationDecay = 0.97;
    private readonly Dictionary<int, Worker> _workers = [];

    /// <summary>HBM pin decisions the guard turned down.</summary>
    public long Skipped { get; private set; }

    /// <summary>A pin on <paramref name="worker"/> ended: held until its return (false) or dropped by the engine (true).</summary>
    public void Outcome(int worker, bool dropped)
    {
        var w = Get(worker);
        w.DropShare += Alpha * ((dropped ? 1 : 0) - w.DropShare);
        w.Seen++;
    }

    /// <summary>
    /// The worker's cumulative pin account (blocks recomputed because of pins, blocks hit thanks to them); negative = not
    /// reported. The first report sets the baseline; a counter that went down (the worker restarted) starts a new one.
    /// </summary>
    public void Account(int worker, long costBlocksTotal, long savedBlocksTotal)
    {
        if (costBlocksTotal < 0 || savedBlocksTotal < 0)
        {
            return;
        }

        var w = Get(worker);
        Decay(w);
        if (w.LastCost >= 0 && costBlocksTotal >= w.LastCost && savedBlocksTotal >= w.LastSaved)
        {
            w.Cost += costBlocksTotal - w.LastCost;
            w.Saved += savedBlocksTotal - w.LastSaved;
        }

        w.LastCost = costBlocksTotal;
        w.LastSaved = savedBlocksTotal;
    }

    /// <summary>Decayed (cost, saved) blocks of <paramref name="worker"/>'s pins, as of now.</summary>
    public (double Cost, double Saved) Ledger(int worker)
    {
        if (!_workers.TryGetValue(worker, out var w))
        {
            return (0, 0);
        }

        Decay(w);
        return (w.Cost, w.Saved);
    }

    /// <summary>True when HBM pins may be sent to <paramref name="worker"/>; a refusal counts and decays the drop share.</summary>
    public bool Allows(int worker)
    {
        if (!_workers.TryGetValue(worker, out var w))
        {
            return true;
        }

        Decay(w);
        bool dropping = w.Seen >= MinOutcomes && w.DropShare > MaxDropShare;
        bool displacing = w.Cost - w.Saved >= MinNetLossBlocks;
        if (!dropping && !displacing)
        {
            return true;
        }

        if (dropping)
        {
            w.DropShare *= ProbationDecay;
        }

        Skipped++;
        return false;
    }

    private Worker Get(int worker)
    {
        if (!_workers.TryGetValue(worker, out var w))
        {
            w = new Worker { DecayedAt = time.GetUtcNow() };
            _workers[worker] = w;
        }

        return w;
    }

    private void Decay(Worker w)
    {
        var now = time.GetUtcNow();
        double dt = (now - w.DecayedAt).TotalSeconds;
        if (dt > 0)
        {
            double f = Math.Pow(2, -dt / LedgerHalfLifeSeconds);
            w.Cost *= f;
            w.Saved *= f;
            w.DecayedAt = now;
        }
    }

    private sealed class Worker
    {
        public double DropShare;
        public int Seen;
        public long LastCost = -1;
        public long LastSaved = -1;
        public double Cost;
        public double Saved;
        public DateTimeOffset DecayedAt;
    }
}
