using Gateway.Core.Agents;
using Gateway.Usage;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The last stage for a request that reached the workers: the usage the worker reported is recorded for the tenant, a
/// delivered turn is shown to the agent layer (retention hints), and the fair queue's ticket is charged what the request
/// actually used (usage, else the streamed events) and released.
/// </summary>
public sealed class RequestSettlement
{
    private readonly IUsageStore _usage;
    private readonly FairQueueStage _queue;
    private readonly Gateway.Agents.AgentRetentionService? _agents;

    /// <summary>Creates the stage (singleton).</summary>
    public RequestSettlement(IUsageStore usage, FairQueueStage queue, Gateway.Agents.AgentRetentionService? agents = null)
    {
        _usage = usage;
        _queue = queue;
        _agents = agents;
    }

    /// <summary>Called once the request is planned: the agent layer resolves its program and may give a resumed turn priority.</summary>
    public AgentIdentity? OnArrived(GatewayRequestContext ctx, Microsoft.AspNetCore.Http.IHeaderDictionary headers) =>
        _agents?.OnArrived(ctx, headers);

    /// <summary>Records what the attempts produced: usage, and a delivered turn for the agent layer.</summary>
    public void OnAttemptsEnded(GatewayRequestContext ctx, AttemptOutcome outcome, AgentIdentity? agentTurn)
    {
        if (ctx.UsageSeen)
        {
            _usage.Record(ctx.Tenant.Path, ctx.PromptTokens, ctx.CachedTokens, ctx.CompletionTokens);
        }

        if (outcome.Kind == AttemptKind.Delivered)
        {
            _agents?.OnCompleted(agentTurn, ctx);
        }
    }

    /// <summary>Charges and releases the fair queue's ticket (always, whatever happened to the request).</summary>
    public void Release(GatewayRequestContext ctx, Gateway.Scheduling.DispatchTicket? ticket)
    {
        if (ticket is not null)
        {
            _queue.Complete(ctx, ticket);
        }
    }
}
