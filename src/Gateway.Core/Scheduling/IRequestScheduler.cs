namespace Gateway.Core.Scheduling;

/// <summary>
/// Decides which queued request is served next. Hosts (gateway dispatcher, simulator) call <see cref="Dequeue"/>
/// when a worker has capacity and report service as it is delivered with <see cref="Charge"/> /
/// <see cref="ChargeOutput"/>, then settle it with <see cref="Complete"/>.
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

    /// <summary>
    /// Removes and returns a request chosen with locality in mind: among the requests the policy considers
    /// fair enough to serve now, the one with the highest <paramref name="affinity"/> (e.g. predicted cached
    /// tokens on the worker that freed capacity). Policies without a locality notion return <see cref="Dequeue"/>.
    /// </summary>
    QueuedRequest? Dequeue(Func<QueuedRequest, double> affinity) => Dequeue();

    /// <summary>
    /// Removes and returns the next request of a tenant that is not over its share, i.e. holds fewer than
    /// <paramref name="factor"/> x its weighted share of the requests in flight (the only ones that may take
    /// <see cref="ReservedCapacity"/>), or null when none is queued. Policies without a notion of share (fcfs, vtc)
    /// return <see cref="Dequeue()"/>: the reserve does not apply to them.
    /// </summary>
    QueuedRequest? DequeueWithinShare(double factor) => Dequeue();

    /// <summary>
    /// <see cref="DequeueWithinShare(double)"/> with locality: among those requests the policy considers fair enough, the
    /// one with the highest <paramref name="affinity"/>. Policies without a notion of share return
    /// <see cref="Dequeue(Func{QueuedRequest, double})"/>.
    /// </summary>
    QueuedRequest? DequeueWithinShare(Func<QueuedRequest, double> affinity, double factor) => Dequeue(affinity);

    /// <summary>Charges <paramref name="tokens"/> newly generated tokens of a dispatched request as they stream.</summary>
    void ChargeOutput(QueuedRequest request, int tokens)
    {
    }

    /// <summary>
    /// Settles a dispatched request on completion or cancel with what it actually consumed: the scheduler
    /// charges (or refunds) the difference between the actual cost and what it charged so far.
    /// </summary>
    void Complete(QueuedRequest request, int cachedPromptTokens, int outputTokens)
    {
    }

    /// <summary>Replaces tenant weights (config reload); service state is kept, keyed by path.</summary>
    void UpdateWeights(Func<string, double> weightOf)
    {
    }
}
