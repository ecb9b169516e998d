namespace Gateway.Core.Routing;

/// <summary>Round-robin over eligible workers (baseline; cache-blind, load-blind).</summary>
public sealed class RoundRobinPolicy : IRoutingPolicy
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "round-robin";

    private int _next = -1;

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers)
    {
        int n = workers.Count;
        if (n == 0)
        {
            return RouteDecision.None;
        }

        int start = (int)((uint)Interlocked.Increment(ref _next) % (uint)n);
        for (int k = 0; k < n; k++)
        {
            int i = (start + k) % n;
            if (workers[i].Eligible)
            {
                return new RouteDecision(i, 0, 0, "round-robin");
            }
        }

        return RouteDecision.None;
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
