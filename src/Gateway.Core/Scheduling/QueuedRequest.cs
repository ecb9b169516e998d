using Gateway.Core.Routing;

namespace Gateway.Core.Scheduling;

/// <summary>A request waiting in the gateway's queue, as schedulers see it.</summary>
public sealed class QueuedRequest
{
    /// <summary>Gateway-unique id; also the FIFO tie-breaker (lower first).</summary>
    public required long Id { get; init; }

    /// <summary>Order of requests inside one tenant's (or session's) queue: resumed turns first, then FIFO by id.</summary>
    internal static IComparer<QueuedRequest> ResumedThenFifo { get; } = Comparer<QueuedRequest>.Create(static (a, b) =>
    {
        int c = (b.ResumeCredit > 0).CompareTo(a.ResumeCredit > 0);
        return c != 0 ? c : a.Id.CompareTo(b.Id);
    });

    /// <summary>Tenant path, e.g. "acme/search/key-1" (a session may be appended as a fourth level).</summary>
    public required string TenantPath { get; init; }

    /// <summary>Session id, if any.</summary>
    public string? SessionId { get; init; }

    /// <summary>Prompt length in tokens.</summary>
    public int PromptTokens { get; init; }

    /// <summary>Prompt tokens expected to be served from cache (routing's prediction).</summary>
    public int ExpectedCachedTokens { get; set; }

    /// <summary>Expected output tokens.</summary>
    public int ExpectedOutputTokens { get; init; }

    /// <summary>Priority class: 0 interactive (default), 1 batch.</summary>
    public int PriorityClass { get; init; }

    /// <summary>
    /// Lag credit, in cost units, of a resumed agent turn (its program already waited once; see
    /// <c>Gateway.Core.Agents.ResumedTurnPriority</c>); 0 for fresh work. Schedulers with tenants serve it ahead of fresh
    /// requests of its own tenant only: hfair places its session leaf this far ahead of its least-served sibling and
    /// orders it first in its leaf; vtc orders it first in its tenant's queue. fcfs ignores it.
    /// </summary>
    public double ResumeCredit { get; init; }

    /// <summary>Batch request that may be shed (rejected) under overload to make room for interactive work.</summary>
    public bool Sheddable { get; init; }

    /// <summary>Model requested (for allow-lists); null when not relevant.</summary>
    public string? Model { get; init; }

    /// <summary>Enqueue time (TimeProvider timestamp).</summary>
    public long EnqueuedTimestamp { get; init; }

    /// <summary>
    /// What routing sees of this request (block hashes): the locality pick scores it against the worker that freed
    /// capacity (<see cref="LocalityPick"/>). Null: no affinity anywhere.
    /// </summary>
    public RouteRequest? Route { get; init; }

    /// <summary>
    /// The worker the locality pick chose this request for: the worker that freed the slot, when the scheduler chose
    /// among requests by their affinity there and this one's was above <see cref="LocalityPick.MinCachedTokens"/>
    /// (<see cref="LocalityPick.Next"/>). Null when it was released in plain fair order. Its first attempt goes to that
    /// worker while it is eligible; retries route again (<see cref="DispatchRouting"/>).
    /// </summary>
    public WorkerInfo? PickedFor { get; internal set; }

    /// <summary>The host's own object for this request (HTTP context, simulator record).</summary>
    public object? Payload { get; init; }

    /// <summary>Service cost the scheduler has charged for this request so far (prefill at dispatch, then output).</summary>
    public double ChargedCost { get; internal set; }

    /// <summary>Output tokens charged so far through <see cref="IRequestScheduler.ChargeOutput"/>.</summary>
    public int ChargedOutputTokens { get; internal set; }

    /// <summary>
    /// How far over its share the request's tenant path was when it was dispatched: the largest, over the levels of the
    /// path, of the node's requests in flight divided by its weighted share of its parent's in flight counting this one
    /// (<c>inFlight(n) / (weight(n) / activeWeight(parent) x (inFlight(parent) + 1))</c>). Below 1: under its share; a
    /// tenant alone is at most 1. Set by <c>hfair</c> at dispatch; 0 for policies without shares.
    /// </summary>
    public double ShareAtDispatch { get; internal set; }

    /// <summary>
    /// Whether another tenant had work (queued or in flight, other gateway replicas' included) at some level of this
    /// request's tenant path when it was dispatched. A tenant alone is within its share but contends with nobody, so it
    /// gets no urgency hint (<see cref="ReservedCapacity.IsUrgent"/>). Set by <c>hfair</c> at dispatch.
    /// </summary>
    public bool ContendedAtDispatch { get; internal set; }

    /// <summary>
    /// How far over its share the heaviest backlogged other tenant was when this request was dispatched (the largest, over
    /// the siblings with more than one request waiting at every level of the path, of the share ratio of
    /// <see cref="ShareAtDispatch"/> or the same ratio of their queued + in-flight requests; other gateway replicas' work
    /// in flight counts as one more neighbour of weight 1). The urgency hint needs a neighbour over its share
    /// (<see cref="ReservedCapacity.IsUrgent"/>): among tenants all within their shares it would only reorder peers. Set by
    /// <c>hfair</c> at dispatch; 0 when not contended.
    /// </summary>
    public double NeighbourShareAtDispatch { get; internal set; }

    /// <summary>
    /// Whether other requests of this request's tenant (key) were still waiting in the queue when it was dispatched: a
    /// backlogged tenant gets no urgency hint (<see cref="ReservedCapacity.IsUrgent"/>), so within-share tenants that keep a
    /// backlog never starve an over-share one inside the worker. Set by <c>hfair</c> at dispatch.
    /// </summary>
    public bool BackloggedAtDispatch { get; internal set; }

    /// <summary>Released beyond the capacity rule by <see cref="ReservedCapacity.Overdraw"/> and not yet repaid.</summary>
    internal LinkedListNode<QueuedRequest>? OverdraftNode { get; set; }

    /// <summary>Slot lent to this request by <see cref="ReservedCapacity"/> (null: none, or taken back).</summary>
    internal LinkedListNode<QueuedRequest>? ReserveNode { get; set; }

    /// <summary>Scheduler-private bookkeeping (queue node, in-flight marker).</summary>
    internal object? SchedulerState { get; set; }

    /// <summary>Admission-private bookkeeping (quota reservation, deadline).</summary>
    internal object? AdmissionState { get; set; }

    /// <summary>
    /// Records <paramref name="tokens"/> more output tokens (negative: a correction down at settlement); returns
    /// their cost for the scheduler to charge. One place for both schedulers' output accounting.
    /// </summary>
    internal double RecordOutput(CostModel cost, int tokens)
    {
        var c = cost.OutputWeight * tokens;
        ChargedCost += c;
        ChargedOutputTokens += tokens;
        return c;
    }

    /// <summary>Times a later request of the same leaf was served before this one by a locality pick.</summary>
    internal int LocalitySkips { get; set; }
}
