namespace Gateway.Core.Routing;

/// <summary>
/// Chooses the worker for a request. Implementations are small sealed types; the same object runs in the live
/// gateway and in the simulator, so they take time and randomness through their constructors and hold their
/// own state (indexes) apart from the host's worker records.
/// </summary>
public interface IRoutingPolicy
{
    /// <summary>Name used in configuration and in the simulator's --routing flag.</summary>
    string Name { get; }

    /// <summary>Picks among <paramref name="workers"/> (ineligible ones must be skipped).</summary>
    RouteDecision Route(RouteRequest request, IReadOnlyList<WorkerInfo> workers);

    /// <summary>The request was dispatched to <paramref name="worker"/> (insert-on-route).</summary>
    void OnRouted(RouteRequest request, WorkerInfo worker);

    /// <summary>The request finished on <paramref name="worker"/>; <paramref name="actualCachedTokens"/> is what the worker reported.</summary>
    void OnCompleted(RouteRequest request, WorkerInfo worker, int actualCachedTokens);
}
