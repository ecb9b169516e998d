using System.Runtime.InteropServices;
using Gateway.Configuration;
using Llm.Prompt.Hashing;
using Llm.Prompt.OpenAi;
using Gateway.Core.Routing;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The second stage: turns an admitted request into the one <see cref="GatewayRequestContext"/> every later stage reads —
/// prompt tokens counted once with the model's tokenizer, the tenant-salted block-hash chain routing and the fair queue
/// use, the expected output, and the body sent to workers (<c>include_usage</c> added to a stream so the gateway sees
/// usage, a client's <c>cache_salt</c> removed, an alias renamed), edited while copying the client's bytes.
/// </summary>
public sealed class RequestPlanner
{
    private const int DefaultExpectedOutputTokens = 256;
    private readonly PromptTokenizers _tokenizers;
    private readonly TimeProvider _time;
    private readonly int _blockSize;

    /// <summary>Creates the stage (singleton).</summary>
    public RequestPlanner(PromptTokenizers tokenizers, IOptions<GatewayOptions> options, TimeProvider time)
    {
        _tokenizers = tokenizers;
        _time = time;
        _blockSize = options.Value.Routing.BlockSize;
    }

    /// <summary>The request's facts, from arrival on.</summary>
    public GatewayRequestContext Plan(in AdmittedRequest admitted)
    {
        var request = admitted.Request;
        var endpoint = admitted.Endpoint;
        long arrived = _time.GetTimestamp();
        bool strip = request.Stream && !request.IncludeUsage && endpoint != OpenAiEndpoint.Embeddings;
        bool dropSalt = BodyRewriter.MentionsCacheSalt(admitted.Body.Span);
        var forwardBody = strip || dropSalt || admitted.RenamedModel is not null
            ? BodyRewriter.Rewrite(admitted.Body, strip, dropSalt, admitted.RenamedModel)
            : admitted.Body;
        return new GatewayRequestContext
        {
            RequestId = admitted.RequestId,
            Tenant = admitted.Tenant,
            Request = request,
            SessionId = admitted.SessionId,
            SessionSource = admitted.SessionSource,
            AskedPriority = admitted.AskedPriority,
            Route = Route(in admitted),
            ForwardBody = forwardBody,
            StripUsageChunk = strip,
            UpstreamPath = admitted.Translated ? "/v1/chat/completions" : null,
            StartTimestamp = arrived,
            Time = _time,
        };
    }

    /// <summary>Prompt tokens of <paramref name="promptText"/> as the gateway counts them for <paramref name="model"/>.</summary>
    public int CountTokens(string model, string promptText) => _tokenizers.For(model).CountTokens(promptText);

    private RouteRequest Route(in AdmittedRequest admitted)
    {
        var request = admitted.Request;
        var tokens = TokenBuffer.Rent();
        try
        {
            _tokenizers.For(request.Model).Encode(request.PromptText, tokens);
            var span = CollectionsMarshal.AsSpan(tokens);
            ulong[] hashes = admitted.Endpoint == OpenAiEndpoint.Embeddings ? [] : BlockHasher.ComputeChain(span, admitted.Tenant.CacheSalt64, _blockSize);
            return new RouteRequest
            {
                RequestId = 0,
                TenantPath = admitted.Tenant.Path,
                SessionId = admitted.SessionId,
                BlockHashes = hashes,
                BlockSize = _blockSize,
                PromptTokens = tokens.Count,
                ExpectedOutputTokens = request.MaxTokens ?? DefaultExpectedOutputTokens,
            };
        }
        finally
        {
            TokenBuffer.Return(tokens);
        }
    }

    /// <summary>One token list per thread, reused across requests (a prompt's tokens are only needed while hashing).</summary>
    private static class TokenBuffer
    {
        [ThreadStatic]
        private static List<int>? t_cached;

        public static List<int> Rent()
        {
            var l = t_cached ?? new List<int>(1024);
            t_cached = null;
            return l;
        }

        public static void Return(List<int> l)
        {
            if (l.Capacity <= 1 << 20)
            {
                l.Clear();
                t_cached = l;
            }
        }
    }
}
