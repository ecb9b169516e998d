using Microsoft.Extensions.Caching.Memory;

namespace Gateway.Responses;

/// <summary>Settings of the Responses API (<c>Gateway:Responses</c>).</summary>
public sealed class ResponsesOptions
{
    /// <summary>How long a stored response stays readable and chainable (<c>previous_response_id</c>).</summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Most responses kept at once; the oldest go first beyond it.</summary>
    public int MaxStored { get; set; } = 10_000;
}

/// <summary>
/// A stored response: what <c>GET /v1/responses/{id}</c> answers, and the conversation (chat messages, instructions
/// excluded) a request naming it as <c>previous_response_id</c> continues. <see cref="SessionKey"/> is the id of the
/// chain's first response: every response of a chain shares it, so a chain is one session.
/// </summary>
public sealed record StoredResponse(string Id, string SessionKey, byte[] HistoryJson, byte[] ResponseJson);

/// <summary>Keeps responses per tenant: a tenant can read, chain or delete only its own.</summary>
public interface IResponseStore
{
    /// <summary>Stores <paramref name="response"/> for <paramref name="tenantPath"/>.</summary>
    Task PutAsync(string tenantPath, StoredResponse response);

    /// <summary>The tenant's response <paramref name="id"/>, or null (unknown, expired, another tenant's).</summary>
    Task<StoredResponse?> GetAsync(string tenantPath, string id);

    /// <summary>Deletes the tenant's response <paramref name="id"/>; false when there was none.</summary>
    Task<bool> DeleteAsync(string tenantPath, string id);
}

/// <summary>In-process store over <see cref="MemoryCache"/>: entries expire after the TTL and the count is bounded.</summary>
public sealed class InMemoryResponseStore : IResponseStore, IDisposable
{
    private readonly MemoryCache _cache;
    private readonly TimeSpan _ttl;

    /// <summary>Creates the store.</summary>
    public InMemoryResponseStore(ResponsesOptions options)
    {
        _ttl = options.Ttl;
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = Math.Max(1, options.MaxStored), CompactionPercentage = 0.1 });
    }

    /// <inheritdoc />
    public Task PutAsync(string tenantPath, StoredResponse response)
    {
        _cache.Set(Key(tenantPath, response.Id), response, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = _ttl });
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task<StoredResponse?> GetAsync(string tenantPath, string id) =>
        Task.FromResult(_cache.TryGetValue(Key(tenantPath, id), out StoredResponse? r) ? r : null);

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string tenantPath, string id)
    {
        string key = Key(tenantPath, id);
        bool had = _cache.TryGetValue(key, out _);
        _cache.Remove(key);
        return Task.FromResult(had);
    }

    /// <inheritdoc />
    public void Dispose() => _cache.Dispose();

    private static string Key(string tenantPath, string id) => tenantPath + "\u0000" + id;
}
