namespace Gateway.Core.Routing;

/// <summary>
/// Where a released request's first attempt goes, shared by the gateway's forwarding stage and the simulator's dispatch:
/// "where" is decided once. When the locality pick chose the request for the worker that freed a slot
/// (<see cref="Scheduling.QueuedRequest.PickedFor"/>), the request goes to that worker while it is still a candidate
/// (serves the model) and eligible (healthy, not draining; the gateway also checks its circuit breaker);
/// otherwise, and on every retry, the routing policy chooses from scratch.
/// </summary>
public static class DispatchRouting
{
    /// <summary>Reason of a decision that kept the worker the locality pick chose the request for.</summary>
    public const string PickedWorkerReason = "picked-worker";

    /// <summary>
    /// The decision for <paramref name="request"/> among <paramref name="candidates"/>: the position of
    /// <paramref name="pickedFor"/> when it is among them and eligible (its predicted
    /// cached tokens from the policy's prefix index when it keeps one, recorded in <see cref="RouteRequest.Decision"/>
    /// as a policy would); else <paramref name="policy"/>'s own decision.
    /// </summary>
    public static RouteDecision Route(IRoutingPolicy policy, RouteRequest request, IReadOnlyList<WorkerInfo> candidates, WorkerInfo? pickedFor)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(candidates);
        int at = pickedFor is null ? -1 : PositionOf(candidates, pickedFor);
        if (at < 0 || !pickedFor!.Eligible)
        {
            return policy.Route(request, candidates);
        }

        int predicted = 0, bestOther = 0;
        if (policy is IPrefixAffinity affinity)
        {
            predicted = affinity.PredictCachedTokens(request, pickedFor);
            for (int i = 0; i < candidates.Count; i++)
            {
                if (i != at && candidates[i].Eligible)
                {
                    bestOther = Math.Max(bestOther, affinity.PredictCachedTokens(request, candidates[i]));
                }
            }
        }

        if (predicted < bestOther)
        {
            // Another worker holds more of this prompt: the pick found the best fit among the queued requests for the
            // freed slot, but not the best place for this one (an agent session's context lives elsewhere).
            return policy.Route(request, candidates);
        }

        var decision = new RouteDecision(at, predicted, bestOther, PickedWorkerReason);
        request.Decision = decision with { WorkerIndex = pickedFor.Index };
        return decision;
    }

    private static int PositionOf(IReadOnlyList<WorkerInfo> candidates, WorkerInfo worker)
    {
        for (int i = 0; i < candidates.Count; i++)
        {
            if (ReferenceEquals(candidates[i], worker))
            {
                return i;
            }
        }

        return -1;
    }
}
