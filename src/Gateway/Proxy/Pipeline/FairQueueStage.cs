using Gateway.Core.Scheduling;
using Gateway.Fleet;
using Gateway.Scheduling;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The third stage: the gateway-held fair queue (<c>Gateway:Scheduling</c>). A planned request waits for its turn and a
/// worker slot; a refusal (queue full, rate or budget limit, shed, queue timeout) is answered here with its status and
/// <c>Retry-After</c>. With the queue off, or no eligible worker for the model (the attempt stage then answers 503),
/// the request passes straight through.
/// </summary>
public sealed class FairQueueStage
{
    private readonly GatewayScheduling? _scheduling;
    private readonly WorkerRegistry _registry;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;

    /// <summary>Creates the stage (singleton); without <paramref name="scheduling"/> every request passes through.</summary>
    public FairQueueStage(WorkerRegistry registry, GatewayMetrics metrics, TimeProvider time, GatewayScheduling? scheduling = null)
    {
        _registry = registry;
        _metrics = metrics;
        _time = time;
        _scheduling = scheduling;
    }

    /// <summary>
    /// Waits for the request's turn. Returns (true, ticket) to go on — the ticket is null when the queue was not
    /// used — or (false, null) once the refusal is written (or the client went away while queued).
    /// </summary>
    public async ValueTask<(bool Proceed, DispatchTicket? Ticket)> EnterAsync(HttpContext context, GatewayRequestContext ctx)
    {
        if (_scheduling is not { Enabled: true } scheduling || !HasEligibleWorker(ctx.Request.Model))
        {
            return (true, null);
        }

        var tenant = ctx.Tenant;
        var route = ctx.Route;
        var queued = scheduling.CreateRequest(ctx.RequestId, tenant.Path, ctx.SessionId, ctx.Request.Model, route.PromptTokens, route.ExpectedOutputTokens, _time.GetTimestamp(), null, route, ctx.Priority.QueueCredit, ctx.AskedPriority);
        DispatchResult admitted;
        try
        {
            admitted = await scheduling.Dispatcher.EnterAsync(queued, context.RequestAborted).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away while queued: the dispatcher removed the request and released its reservation.
            _metrics.RecordQueueRejection(tenant.Path, "client_cancelled");
            return (false, null);
        }

        if (admitted.Ticket is not { } ticket)
        {
            var refusal = admitted.Refusal;
            _metrics.RecordQueueRejection(tenant.Path, RejectionReason(refusal.Outcome));
            await OpenAiErrors.WriteAsync(context, refusal.ToError(), refusal.RetryAfterSeconds).ConfigureAwait(false);
            return (false, null);
        }

        if (ticket.Urgent && scheduling.UnderSharePriority > 0)
        {
            // Under its share (hfair): the worker serves it ahead of over-share work (x-request-priority); on top of a
            // resumed agent turn's priority, so a resumed turn still goes before its tenant's fresh work.
            ctx.Priority = ctx.Priority with { EnginePriority = ReservedCapacity.EnginePriority(ctx.Priority.EnginePriority, urgent: true, scheduling.UnderSharePriority) };
        }

        ctx.QueueWait = ticket.QueueWait;
        _metrics.RecordQueueWait(tenant.Path, ticket.QueueWait);
        if (ctx.Request.Stream)
        {
            ctx.OnDataEvent = () => ticket.OnOutputTokens(1); // only streamed data events are counted (about one token each)
        }

        return (true, ticket);
    }

    /// <summary>Settles the ticket: the fair queue is charged what the request actually used (usage, else streamed events).</summary>
    public void Complete(GatewayRequestContext ctx, DispatchTicket ticket)
    {
        ctx.OnDataEvent = null;
        int output = ctx.UsageSeen ? ctx.CompletionTokens : ctx.DataEvents;
        ticket.Complete(ctx.UsageSeen ? ctx.CachedTokens : 0, output, ctx.Worker?.Info);
        _scheduling!.RecordSettled(ctx.Tenant.Path, ticket.Request.ChargedCost);
    }

    /// <summary>The metric label of a refusal.</summary>
    internal static string RejectionReason(AdmissionOutcome o) => o switch
    {
        AdmissionOutcome.QueueFull => "queue_full",
        AdmissionOutcome.TenantQueueFull => "tenant_queue_full",
        AdmissionOutcome.RateLimited => "rate_limited",
        AdmissionOutcome.ConcurrencyLimited => "concurrency_limited",
        AdmissionOutcome.BudgetExhausted => "budget_exhausted",
        AdmissionOutcome.ModelNotAllowed => "model_not_allowed",
        AdmissionOutcome.Shed => "shed",
        AdmissionOutcome.TimedOut => "queue_timeout",
        AdmissionOutcome.QuotaStoreUnavailable => "quota_store_unavailable",
        _ => "other",
    };

    private bool HasEligibleWorker(string model)
    {
        foreach (var i in _registry.GetCandidates(model).Infos)
        {
            if (i.Eligible)
            {
                return true;
            }
        }

        return false;
    }
}
