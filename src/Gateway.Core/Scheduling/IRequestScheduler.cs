namespace Gateway.Core.Scheduling;

/// <summary>
/// Decides which queued request is served next. Hosts (gateway dispatcher, simulator) call <see cref="Dequeue"/>
/// when a worker has capacity and report service as it is delivered with <see cref="Charge"/>.
/// Implementations are not thread-safe; the host serialises calls.
/// </summary>
public interface IRequestScheduler
{
    /// <summary>Name used in configuration and in the simulator's --scheduling flag.</summary>
    string Name { get; }

    /// <summary>Requests waiting.</summary>
    int Count { get; }

    /// <summary>Adds a request.</summary>
    void Enqueue(QueuedRequest request);

    /// <summary>Removes and returns the next request to serve, or null when empty.</summary>
    QueuedRequest? Dequeue();

    /// <summary>Removes a request that left the queue without being served (cancel, timeout).</summary>
    bool Remove(QueuedRequest request);

    /// <summary>Charges <paramref name="cost"/> units of service (weighted tokens) to <paramref name="tenantPath"/>.</summary>
    void Charge(string tenantPath, double cost);
}
