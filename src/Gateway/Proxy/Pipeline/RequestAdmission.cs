using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Core.Tenancy;
using Gateway.Fleet;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The first stage: a request the gateway will serve, or the 4xx that says why not. Reads the body once (size-limited),
/// translates another API's body to a chat completion, parses it once, finds the tenant-scoped session, resolves the
/// model (aliases, splits, allow-list) and checks the key's caps (<c>max_tokens</c>, <c>n</c>) and the
/// <c>x-priority</c> header. Every refusal is written here in OpenAI shape (a translating endpoint rewrites it into its
/// own API's shape).
/// </summary>
public sealed class RequestAdmission
{
    private static long s_nextRequestId;

    private readonly RequestBodyReader _bodies;
    private readonly ModelCatalog _models;

    /// <summary>Creates the stage (singleton).</summary>
    public RequestAdmission(RequestBodyReader bodies, ModelCatalog models)
    {
        _bodies = bodies;
        _models = models;
    }

    /// <summary>
    /// Admits the request of an authenticated <paramref name="tenant"/> (null: answers 401), or writes the refusal and
    /// returns null. The caller disposes the admitted request once the answer is sent (its body is pooled). With
    /// <paramref name="countOnly"/> (token counting, no inference) the model is resolved without a session and the
    /// caps, which limit inference, are not checked.
    /// </summary>
    public async ValueTask<AdmittedRequest?> AdmitAsync(HttpContext context, Tenant? tenant, OpenAiEndpoint endpoint, IRequestTranslation? translation, bool countOnly = false)
    {
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(context, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return null;
        }

        var (pooled, readError) = await _bodies.ReadAsync(context).ConfigureAwait(false);
        if (readError is not null)
        {
            await OpenAiErrors.WriteAsync(context, readError).ConfigureAwait(false);
            return null;
        }

        OpenAiError? error;
        AdmittedRequest? admitted = null;
        try
        {
            (admitted, error) = await CheckAsync(context, tenant, endpoint, translation, pooled, countOnly).ConfigureAwait(false);
        }
        finally
        {
            if (admitted is null)
            {
                pooled.Dispose();
            }
        }

        if (error is not null)
        {
            await OpenAiErrors.WriteAsync(context, error).ConfigureAwait(false);
        }

        return admitted;
    }

    private async ValueTask<(AdmittedRequest? Admitted, OpenAiError? Error)> CheckAsync(HttpContext context, Tenant tenant, OpenAiEndpoint endpoint, IRequestTranslation? translation, PooledBody pooled, bool countOnly)
    {
        ReadOnlyMemory<byte> body = pooled.Memory;
        if (translation is not null)
        {
            var (translated, translateError) = await translation.TranslateAsync(body, tenant, context.RequestAborted).ConfigureAwait(false);
            if (translateError is not null)
            {
                return (null, translateError);
            }

            body = translated;
        }

        if (!OpenAiRequestParser.TryParse(body, endpoint, out var parsed, out var parseError))
        {
            return (null, parseError);
        }

        var request = parsed!;
        long requestId = countOnly ? 0 : Interlocked.Increment(ref s_nextRequestId);
        var (clientSession, sessionSource) = countOnly ? (null, null) : SessionIdentity.Resolve(context.Request.Headers, request);
        string? sessionId = SessionIdentity.Scope(tenant.Path, clientSession);
        var (served, modelError) = _models.Resolve(tenant, request.Model, sessionId, requestId);
        if (modelError is not null)
        {
            return (null, modelError);
        }

        string? renamed = served == request.Model ? null : served;
        request = renamed is null ? request : request with { Model = served };
        if (countOnly)
        {
            return (new AdmittedRequest { RequestId = 0, Tenant = tenant, Endpoint = endpoint, Request = request, Body = body, Pooled = pooled, Translated = translation is not null, RenamedModel = renamed }, null);
        }

        if (tenant.MaxTokens > 0 && request.MaxTokens > tenant.MaxTokens)
        {
            return (null, OpenAiError.Invalid($"'max_tokens' is {request.MaxTokens}; this API key allows at most {tenant.MaxTokens}.", "max_tokens"));
        }

        if (tenant.MaxN > 0 && request.N > tenant.MaxN)
        {
            return (null, OpenAiError.Invalid($"'n' is {request.N}; this API key allows at most {tenant.MaxN}.", "n"));
        }

        if (!PriorityRequest.TryParse(context.Request.Headers[PriorityRequest.Header], out var askedPriority))
        {
            return (null, OpenAiError.Invalid($"Header '{PriorityRequest.Header}' must be 'interactive' or 'batch'.", PriorityRequest.Header));
        }

        return (new AdmittedRequest
        {
            RequestId = requestId,
            Tenant = tenant,
            Endpoint = endpoint,
            Request = request,
            Body = body,
            Pooled = pooled,
            Translated = translation is not null,
            RenamedModel = renamed,
            SessionId = sessionId,
            SessionSource = sessionSource,
            AskedPriority = askedPriority,
        }, null);
    }
}

/// <summary>
/// What admission established about a request: who asked, what, in which session, at what priority. A value handed to
/// <see cref="RequestPlanner"/>, which turns it into the request's one <see cref="GatewayRequestContext"/>.
/// </summary>
public readonly struct AdmittedRequest : IDisposable
{
    /// <summary>Gateway-unique request id.</summary>
    public required long RequestId { get; init; }

    /// <summary>Authenticated tenant.</summary>
    public required Tenant Tenant { get; init; }

    /// <summary>The OpenAI endpoint the request takes (a translated request takes chat completions).</summary>
    public required OpenAiEndpoint Endpoint { get; init; }

    /// <summary>Parsed body, its model already the served name.</summary>
    public required OpenAiRequest Request { get; init; }

    /// <summary>The chat completions body (the client's bytes, or the translation of another API's body).</summary>
    public required ReadOnlyMemory<byte> Body { get; init; }

    /// <summary>The pooled buffer the client's body was read into.</summary>
    internal PooledBody Pooled { get; init; }

    /// <summary>True when the body was translated from another API.</summary>
    public bool Translated { get; init; }

    /// <summary>The served model when it differs from the one the client named (an alias or split), else null.</summary>
    public string? RenamedModel { get; init; }

    /// <summary>Tenant-scoped session id (<see cref="SessionIdentity.Scope"/>), or null.</summary>
    public string? SessionId { get; init; }

    /// <summary>Where the client's session id came from (header or body field name), or null.</summary>
    public string? SessionSource { get; init; }

    /// <summary>The priority class the client asked for (<c>x-priority</c>), or null.</summary>
    public PriorityClass? AskedPriority { get; init; }

    /// <summary>Gives the pooled body back.</summary>
    public void Dispose() => Pooled.Dispose();
}
