using System.Text.Json;
using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Fleet;
using Microsoft.AspNetCore.Http;
using Worker.Contract;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// Any other <c>/v1/*</c> request (say <c>/v1/rerank</c>, <c>/v1/score</c>, <c>/v1/tokenize</c> of a vLLM worker) whose JSON
/// body names a model: authenticated, the model resolved like every request (aliases, splits, allow-list → 404 / 403),
/// then forwarded once, as is (the served name put in <c>model</c> when an alias was used), to the least busy eligible
/// worker of that model's pool; the worker's answer is relayed unchanged. No fair queue, no retry, no usage accounting:
/// the gateway does not know what such an endpoint costs. Without a JSON body naming a model the answer stays a 404
/// <c>unknown_url</c>. It sends through the forwarding stage's pooled <see cref="Pipeline.WorkerConnections"/>; with no
/// relay timers of its own, the worker's first-byte timeout is YARP's activity timeout here.
/// </summary>
public sealed class PassthroughHandler
{
    private readonly IHttpForwarder _forwarder;
    private readonly ApiKeyAuthenticator _auth;
    private readonly ModelCatalog _models;
    private readonly WorkerRegistry _registry;
    private readonly Pipeline.RequestBodyReader _bodies;
    private readonly Pipeline.WorkerConnections _connections;
    private readonly ForwarderRequestConfig _config;
    private long _requests;

    /// <summary>Creates the handler (singleton).</summary>
    public PassthroughHandler(IHttpForwarder forwarder, ApiKeyAuthenticator auth, ModelCatalog models, WorkerRegistry registry, Pipeline.RequestBodyReader bodies, Pipeline.WorkerConnections connections)
    {
        _forwarder = forwarder;
        _auth = auth;
        _models = models;
        _registry = registry;
        _bodies = bodies;
        _connections = connections;
        _config = connections.RequestConfig with { ActivityTimeout = connections.FirstByteTimeout };
    }

    /// <summary>Handles one request to an unmapped <c>/v1/*</c> path.</summary>
    public async Task HandleAsync(HttpContext context)
    {
        var notFound = OpenAiErrors.NotFound(context.Request.Method, context.Request.Path);
        var tenant = _auth.Authenticate(ApiCredential.Of(context.Request.Headers));
        if (tenant is null)
        {
            await OpenAiErrors.WriteAsync(context, OpenAiErrors.InvalidKey).ConfigureAwait(false);
            return;
        }

        if (!HttpMethods.IsPost(context.Request.Method) && !HttpMethods.IsPut(context.Request.Method) && !HttpMethods.IsPatch(context.Request.Method))
        {
            await OpenAiErrors.WriteAsync(context, notFound).ConfigureAwait(false);
            return;
        }

        var (pooled, readError) = await _bodies.ReadAsync(context).ConfigureAwait(false);
        if (readError is not null)
        {
            await OpenAiErrors.WriteAsync(context, readError).ConfigureAwait(false);
            return;
        }

        using (pooled)
        {
            var body = pooled.Memory;
            if (TopLevelString(body.Span, "model") is not { } requested)
            {
                await OpenAiErrors.WriteAsync(context, notFound).ConfigureAwait(false);
                return;
            }

            var (served, error) = _models.Resolve(tenant, requested, null, Interlocked.Increment(ref _requests));
            if (error is not null)
            {
                await OpenAiErrors.WriteAsync(context, error).ConfigureAwait(false);
                return;
            }

            if (LeastBusy(served) is not { } worker)
            {
                await OpenAiErrors.WriteAsync(context, OpenAiErrors.NoHealthyWorker(served), 1).ConfigureAwait(false);
                return;
            }

            ReadOnlyMemory<byte> forward = served == requested ? body : BodyRewriter.Rewrite(body, false, false, served);
            worker.Info.OnDispatched(0);
            ForwarderError sent;
            try
            {
                sent = await _forwarder.SendAsync(context, worker.Prefix, _connections.Invoker, _config, new Transformer(forward, tenant.CacheSalt), context.RequestAborted).ConfigureAwait(false);
            }
            finally
            {
                worker.Info.OnCompleted(0, 0, false);
            }

            if (sent != ForwarderError.None && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                await OpenAiErrors.WriteAsync(context, new OpenAiError(502, $"The worker failed before answering ({sent}).", "server_error", null, "upstream_error")).ConfigureAwait(false);
            }
        }
    }

    private WorkerEndpoint? LeastBusy(string model)
    {
        WorkerEndpoint? best = null;
        foreach (var e in _registry.GetCandidates(model).Endpoints)
        {
            if (e.Info.Eligible && (best is null || e.Info.InFlight < best.Info.InFlight))
            {
                best = e;
            }
        }

        return best;
    }

    /// <summary>The top-level string property <paramref name="name"/> of a JSON object body, or null (not JSON, not an object, absent, empty, not a string).</summary>
    internal static string? TopLevelString(ReadOnlySpan<byte> body, string name)
    {
        try
        {
            var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = OpenAiRequestParser.MaxDepth });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return null;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isModel = reader.ValueTextEquals(name);
                reader.Read();
                if (isModel)
                {
                    return reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 } m ? m : null;
                }

                reader.Skip();
            }
        }
        catch (JsonException)
        {
        }

        return null;
    }

    /// <summary>Sends the buffered body; drops the client's credentials and any hint header, sets the tenant's cache salt.</summary>
    private sealed class Transformer(ReadOnlyMemory<byte> body, string cacheSalt) : HttpTransformer
    {
        public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
        {
            var request = httpContext.Request;
            request.Body = new MemoryStream(body.ToArray(), writable: false);
            request.ContentLength = body.Length;
            request.Headers.Remove("Transfer-Encoding");
            await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
            var h = proxyRequest.Headers;
            h.Authorization = null;
            h.Remove(ApiCredential.ApiKeyHeader);
            h.Remove("Cookie");
            h.Remove(WorkerHeaders.CacheSalt);
            h.Remove(WorkerHeaders.SessionId);
            h.Remove(WorkerHeaders.RetentionTtl);
            h.Remove(WorkerHeaders.RequestPriority);
            h.TryAddWithoutValidation(WorkerHeaders.CacheSalt, cacheSalt);
        }
    }
}
