using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;

namespace Gateway.Proxy;

/// <summary>
/// Finds the session a request belongs to, first match wins: <c>x-session-id</c> (our hint header),
/// <c>x-claude-code-session-id</c> (Claude Code), <c>session_id</c> (Codex CLI header), the session (else thread) id in
/// Codex's <c>x-codex-turn-metadata</c> JSON header, body <c>prompt_cache_key</c> (a Responses chain sets it to the id
/// of its first response), body <c>user</c>. Values longer than 256 characters are ignored (a header is not a place to smuggle data). The id
/// is then scoped to the tenant (<see cref="Scope"/>).
/// </summary>
public static class SessionIdentity
{
    /// <summary>Codex's per-turn JSON header (session, thread and turn ids).</summary>
    public const string CodexMetadataHeader = "x-codex-turn-metadata";

    private const int MaxLength = 256;
    private const ulong ScopeSeed = 0x5E55_1D00UL;
    private static readonly string[] Headers = ["x-session-id", "x-claude-code-session-id", "session_id"];

    /// <summary>Returns the session id and where it came from, or (null, null).</summary>
    public static (string? SessionId, string? Source) Resolve(IHeaderDictionary headers, OpenAiRequest request)
    {
        foreach (var h in Headers)
        {
            if (headers.TryGetValue(h, out var v))
            {
                string? s = v.ToString();
                if (!string.IsNullOrWhiteSpace(s) && s.Length <= MaxLength)
                {
                    return (s, h);
                }
            }
        }

        if (CodexTurnMetadata(headers) is { } codex)
        {
            return (codex, CodexMetadataHeader);
        }

        if (!string.IsNullOrWhiteSpace(request.PromptCacheKey) && request.PromptCacheKey.Length <= MaxLength)
        {
            return (request.PromptCacheKey, "prompt_cache_key");
        }

        if (!string.IsNullOrWhiteSpace(request.User) && request.User.Length <= MaxLength)
        {
            return (request.User, "user");
        }

        return (null, null);
    }

    private static string? CodexTurnMetadata(IHeaderDictionary headers)
    {
        string raw = headers[CodexMetadataHeader].ToString();
        if (raw.Length == 0 || raw.Length > 4096)
        {
            return null;
        }

        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(raw);
            if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object)
            {
                return null;
            }

            foreach (var name in (ReadOnlySpan<string>)["session_id", "conversation_id", "thread_id"])
            {
                if (doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.String
                    && v.GetString() is { Length: > 0 and <= MaxLength } id && !string.IsNullOrWhiteSpace(id))
                {
                    return id;
                }
            }
        }
        catch (System.Text.Json.JsonException)
        {
            // not JSON: ignored like an over-long header
        }

        return null;
    }

    /// <summary>
    /// The id the gateway uses for a client's session everywhere past authentication — routing affinity, the scheduler's
    /// session leaves, the agent layer and the <c>x-session-id</c> sent to workers: an opaque 64-bit hash of the tenant
    /// path and the client's id ("s" + 16 hex digits), so two tenants that send the same id (say <c>user: "default"</c>)
    /// never share a session, a worker-side pin or a routing binding, and workers never see the client's raw id.
    /// </summary>
    public static string? Scope(string tenantPath, string? clientSessionId)
    {
        if (clientSessionId is null)
        {
            return null;
        }

        // Hashes "<tenant path>\0<client id>" without building that string (this runs for every request with a session).
        int length = tenantPath.Length + 1 + clientSessionId.Length;
        ulong hash;
        if (length <= 512)
        {
            Span<char> joined = stackalloc char[length];
            tenantPath.CopyTo(joined);
            joined[tenantPath.Length] = '\u0000';
            clientSessionId.CopyTo(joined[(tenantPath.Length + 1)..]);
            hash = Llm.Prompt.Hashing.TextHash.Utf8XxHash64(joined, ScopeSeed);
        }
        else
        {
            hash = Llm.Prompt.Hashing.TextHash.Utf8XxHash64(tenantPath + "\u0000" + clientSessionId, ScopeSeed);
        }

        return string.Create(17, hash, static (chars, h) =>
        {
            chars[0] = 's';
            h.TryFormat(chars[1..], out _, "x16", System.Globalization.CultureInfo.InvariantCulture);
        });
    }
}
