namespace Gateway.Core.Scheduling;

/// <summary>
/// Schedulers that account service per tenant path expose it here, so a host can publish local service and feed
/// other replicas' service back through <see cref="IRequestScheduler.Charge"/> (shared fairness across replicas).
/// </summary>
public interface IServiceAccounting
{
    /// <summary>Cumulative service (cost units) charged to <paramref name="tenantPath"/> and its subtree.</summary>
    double ServiceOf(string tenantPath);
}
