using Gateway.Auth;
using Gateway.Configuration;
using Gateway.Core.Models;
using Llm.Prompt.OpenAi;
using Microsoft.Extensions.Options;

namespace Gateway.Fleet;

/// <summary>
/// The names a key may send and the pool each one routes to: the fleet's served models (<see cref="WorkerRegistry"/>,
/// from each worker's <c>/v1/models</c>) plus the configured aliases and splits (<c>Gateway:Models</c>, and each key's
/// own <c>Aliases</c>), resolved by <see cref="IModelResolver"/>.
/// </summary>
public sealed class ModelCatalog
{
    private readonly WorkerRegistry _registry;
    private readonly IModelResolver _resolver;
    private readonly Func<string, bool> _isServed;

    /// <summary>Creates the catalog from <c>Gateway:Models</c>.</summary>
    public ModelCatalog(WorkerRegistry registry, IOptions<GatewayOptions> options)
    {
        _registry = registry;
        var m = options.Value.Models;
        _resolver = new ModelResolver(new ModelRules
        {
            Aliases = new Dictionary<string, string>(m.Aliases, StringComparer.Ordinal),
            Splits = m.Splits.ToDictionary(
                kv => kv.Key,
                kv => (IReadOnlyList<SplitSide>)kv.Value.ConvertAll(s => new SplitSide(s.Model, s.Weight)),
                StringComparer.Ordinal),
        });
        _isServed = registry.KnowsModel;
    }

    /// <summary>
    /// The served model <paramref name="requested"/> stands for, for this tenant and session (a split keeps a session on
    /// one side; without a session each request is placed by its id), or the error to answer: 404
    /// <c>model_not_found</c>, 403 <c>model_not_allowed</c>.
    /// </summary>
    public (string Model, OpenAiError? Error) Resolve(Tenant tenant, string requested, string? sessionId, long requestId)
    {
        var r = _resolver.Resolve(requested, tenant.ModelScope, ModelResolver.StickyKey(sessionId, requestId), _isServed);
        return r.Outcome switch
        {
            ModelOutcome.Served => (r.Model, null),
            ModelOutcome.NotAllowed => (requested, Proxy.OpenAiErrors.ModelNotAllowed(requested)),
            _ => (requested, OpenAiError.ModelNotFound(requested)),
        };
    }

    /// <summary>Whether <paramref name="name"/> resolves to a served model the tenant may use (for <c>GET /v1/models/{id}</c>).</summary>
    public bool IsVisible(Tenant tenant, string name) =>
        _resolver.Resolve(name, tenant.ModelScope, 0, _isServed).Outcome == ModelOutcome.Served;

    /// <summary>What <c>GET /v1/models</c> lists for the tenant: its allowed served models and the aliases and splits that resolve for it.</summary>
    public IReadOnlyList<string> Visible(Tenant tenant) => _resolver.Visible(tenant.ModelScope, _registry.Models, _isServed);
}
