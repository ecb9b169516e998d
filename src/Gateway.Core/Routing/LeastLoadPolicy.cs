namespace Gateway.Core.Routing;

/// <summary>
/// Least in-flight requests (charged at dispatch), ties broken by a seeded random draw so misses never pile
/// onto the first "emptiest" worker. Baseline; cache-blind. Knob: the random seed.
/// </summary>
public sealed class LeastLoadPolicy(Random random) : IRoutingPolicy
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "least-load";

    private readonly Lock _lock = new();

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
    {
        int best = -1;
        int bestLoad = int.MaxValue;
        int ties = 0;
        for (int i = 0; i < workers.Count; i++)
        {
            var w = workers[i];
            if (!w.Eligible)
            {
                continue;
            }

            int load = w.InFlight;
            if (load < bestLoad)
            {
                best = i;
                bestLoad = load;
                ties = 1;
            }
            else if (load == bestLoad)
            {
                ties++;
                int draw;
                lock (_lock)
                {
                    draw = random.Next(ties);
                }

                if (draw == 0)
                {
                    best = i; // reservoir sampling: uniform among ties
                }
            }
        }

        return best < 0 ? RouteDecision.None : new RouteDecision(best, 0, 0, "least-load");
    }

    /// <inheritdoc />
    public void OnRouted(RouteRequest request, WorkerInfo worker)
    {
    }

    /// <inheritdoc />
    public void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens)
    {
    }
}
