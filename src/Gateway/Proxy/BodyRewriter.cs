using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gateway.Proxy;

/// <summary>
/// The only edits the gateway makes to a body: ask the worker for usage on streams
/// (<c>stream_options.include_usage=true</c>), drop a client-supplied <c>cache_salt</c> (the gateway sets the
/// tenant's salt by header; a client must never choose another tenant's) and, for an alias or a split, name the served
/// model the worker knows. Everything else is forwarded byte for byte.
/// </summary>
internal static class BodyRewriter
{
    public static bool MentionsCacheSalt(ReadOnlySpan<byte> body) => body.IndexOf("\"cache_salt\""u8) >= 0;

    public static byte[] Rewrite(ReadOnlyMemory<byte> body, bool forceIncludeUsage, bool dropCacheSalt, string? model = null)
    {
        var node = JsonNode.Parse(body.Span, documentOptions: new JsonDocumentOptions { MaxDepth = Core.OpenAi.OpenAiRequestParser.MaxDepth })!.AsObject();
        if (model is not null)
        {
            node["model"] = model;
        }

        if (dropCacheSalt)
        {
            node.Remove("cache_salt");
        }

        if (forceIncludeUsage)
        {
            if (node["stream_options"] is JsonObject so)
            {
                so["include_usage"] = true;
            }
            else
            {
                node["stream_options"] = new JsonObject { ["include_usage"] = true };
            }
        }

        using var ms = new MemoryStream(body.Length + 48);
        using (var w = new Utf8JsonWriter(ms))
        {
            node.WriteTo(w);
        }

        return ms.ToArray();
    }
}
