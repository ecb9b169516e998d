using Gateway.Fleet;
using Gateway.Telemetry;

namespace Gateway.State;

/// <summary>
/// Scrape-time series of the slot split across replicas (<see cref="SharedSlots"/>): whether this replica's limits are
/// cluster-wide (<c>gateway_slots_shared</c> 1) or its fallback share while Redis is away or before the first sync (0),
/// how many replicas the last sync saw, and per worker this replica's limit and every replica's requests in flight.
/// Labels: worker URL prefixes only.
/// </summary>
internal static class SharedSlotsMetrics
{
    public const string SlotsShared = "gateway_slots_shared";
    public const string SlotReplicas = "gateway_slot_replicas";
    public const string WorkerSlotLimit = "gateway_worker_slot_limit";
    public const string WorkerClusterInFlight = "gateway_worker_cluster_in_flight";

    public static void Register(GatewayMetrics metrics, SharedSlots slots, WorkerRegistry registry, int slotsPerWorker)
    {
        var f = metrics.Factory;
        var shared = f.CreateGauge(SlotsShared, "1 while this replica's share of each worker's slots comes from the split through Redis; 0 while it serves on its fallback share (Redis away, or before the first slot sync).");
        var replicas = f.CreateGauge(SlotReplicas, "Gateway replicas holding slot grants at the last slot sync, this one included (the fallback share divides the slots by it).");
        var limit = new ObservedGauge(f.CreateGauge(WorkerSlotLimit, "Requests this replica may have in flight on the worker: its share of the worker's slots.", ["worker"]));
        var cluster = new ObservedGauge(f.CreateGauge(WorkerClusterInFlight, "Requests every live replica had in flight on the worker at the last slot sync (0 while Redis is away).", ["worker"]));
        metrics.OnCollect(() =>
        {
            shared.Set(slots.IsShared ? 1 : 0);
            replicas.Set(slots.Replicas);
            var workers = registry.All;
            limit.Update(workers, w => w.Prefix, w => slots.LimitOf(w.Info.Id, slotsPerWorker));
            cluster.Update(workers, w => w.Prefix, w => slots.IsShared ? slots.ClusterInFlight(w.Info.Id) : 0);
        });
    }
}
