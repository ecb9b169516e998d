using Gateway.Core.Routing.KvAware;

namespace Gateway.Core.Routing;

/// <summary>
/// A routing policy that reads what workers hold from their KV events. The host (the gateway's event subscriber, the
/// simulator's relay) applies each worker's stored / removed / cleared events to <see cref="Precise"/>.
/// </summary>
public interface IKvEventConsumer
{
    /// <summary>The index the host feeds; null when this instance runs without events (an approximate mode).</summary>
    PreciseIndex? Precise { get; }
}
