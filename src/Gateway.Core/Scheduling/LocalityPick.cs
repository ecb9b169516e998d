using Gateway.Core.Routing;

namespace Gateway.Core.Scheduling;

/// <summary>
/// The dispatch step shared by the gateway (<c>FairDispatcher</c>) and the simulator: when worker <c>w</c> has free
/// capacity, take the next request with <see cref="IRequestScheduler.Dequeue(Func{QueuedRequest, double})"/> where a
/// request's affinity is the number of its prompt tokens predicted cached on <c>w</c> (routing's prefix index,
/// <see cref="IPrefixAffinity"/>). <c>hfair</c> restricts the choice to requests within its lag bound
/// (<see cref="LocalityOptions.LagBound"/>), so locality never costs more than the bound in fairness; policies without
/// a locality notion (fcfs, vtc) and routing policies without a prefix index fall back to the plain fair order.
/// Knobs: <see cref="Enabled"/> (off: plain fair order, the "fairness only" baseline) and <see cref="MinCachedTokens"/>
/// (a match shorter than this counts as no affinity, so a few cached tokens never reorder the fair queue).
/// </summary>
public sealed class LocalityPick
{
    /// <summary>Default <see cref="MinCachedTokens"/>: 256 tokens (16 blocks of 16).</summary>
    public const int DefaultMinCachedTokens = 256;

    private readonly IPrefixAffinity? _affinity;

    /// <summary>
    /// Creates the pick over <paramref name="routing"/>'s prefix knowledge (none when it keeps no index).
    /// <paramref name="sendToPickedWorker"/>: mark a request chosen for a worker by affinity as picked for it
    /// (<see cref="QueuedRequest.PickedFor"/>), so its first attempt goes there; off, routing places every request.
    /// </summary>
    public LocalityPick(IRoutingPolicy routing, bool enabled = true, int minCachedTokens = DefaultMinCachedTokens, bool sendToPickedWorker = false)
    {
        ArgumentNullException.ThrowIfNull(routing);
        _affinity = enabled ? routing as IPrefixAffinity : null;
        MinCachedTokens = Math.Max(0, minCachedTokens);
        SendToPickedWorker = sendToPickedWorker;
    }

    /// <summary>
    /// Whether a request chosen by affinity is sent to the worker it was chosen for (<see cref="QueuedRequest.PickedFor"/>).
    /// Off by default: on the WEKA agent trace under <c>hfair</c> it raised <c>kv-aware</c>'s TTFT p90 (docs/policies/hfair.md).
    /// </summary>
    public bool SendToPickedWorker { get; }

    /// <summary>Predicted cached tokens below this are scored 0 (ties keep the strict fair order).</summary>
    public int MinCachedTokens { get; }

    /// <summary>Whether picks use cache affinity (a routing policy with a prefix index and locality switched on).</summary>
    public bool Enabled => _affinity is not null;

    /// <summary>Affinity of a request for <paramref name="worker"/>: predicted cached prompt tokens there.</summary>
    public double Affinity(QueuedRequest request, WorkerInfo worker)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (_affinity is null || request.Route is not { } route)
        {
            return 0;
        }

        int cached = _affinity.PredictCachedTokens(route, worker);
        return cached >= MinCachedTokens ? cached : 0;
    }

    /// <summary>
    /// Next request from <paramref name="scheduler"/> for <paramref name="worker"/>, which has free capacity; with
    /// <paramref name="withinShareFactor"/> above 0, only among tenants holding fewer than that factor x their weighted
    /// share of the requests in flight (a reserved slot, <see cref="ReservedCapacity"/>), null when none is queued. When
    /// the scheduler chose by affinity (hfair; fcfs and vtc never ask), the chosen request's affinity for
    /// <paramref name="worker"/> is positive and <see cref="SendToPickedWorker"/> is on, the request is marked as picked
    /// for it (<see cref="QueuedRequest.PickedFor"/>):
    /// its first attempt goes there. A request chosen with no affinity there was the fair order's choice, not the
    /// worker's, and routing places it.
    /// </summary>
    public QueuedRequest? Next(IRequestScheduler scheduler, WorkerInfo worker, double withinShareFactor = 0)
    {
        ArgumentNullException.ThrowIfNull(scheduler);
        ArgumentNullException.ThrowIfNull(worker);
        bool reserved = withinShareFactor > 0;
        if (_affinity is null)
        {
            return reserved ? scheduler.DequeueWithinShare(withinShareFactor) : scheduler.Dequeue();
        }

        var scoring = new Scoring(this, worker);
        var r = reserved ? scheduler.DequeueWithinShare(scoring.Score, withinShareFactor) : scheduler.Dequeue(scoring.Score);
        if (r is not null)
        {
            r.PickedFor = SendToPickedWorker && scoring.Scored(r) > 0 ? worker : null;
        }

        return r;
    }

    /// <summary>One pick's affinity function: remembers whether the scheduler asked, and the best score it saw.</summary>
    private sealed class Scoring(LocalityPick pick, WorkerInfo worker)
    {
        private QueuedRequest? _best;
        private double _bestScore;
        private bool _asked;

        public double Score(QueuedRequest r)
        {
            var score = pick.Affinity(r, worker);
            if (!_asked || score > _bestScore)
            {
                (_best, _bestScore) = (r, score);
            }

            _asked = true;
            return score;
        }

        /// <summary>The affinity of <paramref name="chosen"/> if the scheduler chose by affinity, else 0.</summary>
        public double Scored(QueuedRequest chosen) =>
            !_asked ? 0 : ReferenceEquals(chosen, _best) ? _bestScore : pick.Affinity(chosen, worker);
    }
}
