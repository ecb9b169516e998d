namespace Gateway.Core.Routing;

/// <summary>
/// Routing policies that know which prefixes workers hold answer how many of a request's prompt tokens a given
/// worker is predicted to have cached. The scheduler's locality pick (<see cref="Scheduling.LocalityPick"/>) uses it
/// to choose, among the requests that are fair enough to serve, the one that fits the worker that freed capacity.
/// </summary>
public interface IPrefixAffinity
{
    /// <summary>Predicted cached prompt tokens of <paramref name="request"/> on <paramref name="worker"/> (0 when unknown).</summary>
    int PredictCachedTokens(RouteRequest request, WorkerInfo worker);
}
