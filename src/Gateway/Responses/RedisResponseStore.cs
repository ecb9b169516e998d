using System.Buffers;
using System.Text;
using System.Text.Json;
using Gateway.State;
using StackExchange.Redis;

namespace Gateway.Responses;

/// <summary>
/// Stored responses in Redis (when <c>Gateway:State:Redis</c> is set), so a chain continues on any replica: one string
/// per response at <c>{Prefix}resp:{length of the tenant path}:{tenant path}:{id}</c>, written with the TTL (<c>SET … PX</c>), holding
/// <c>{"s": session key, "h": history, "r": response}</c>. The tenant's path is part of the key, so a tenant can only
/// ever read, chain or delete its own. <see cref="ResponsesOptions.MaxStored"/> does not apply (Redis's own memory
/// policy does); a response that cannot be read because Redis is away is an error (503), never a silent "not found".
/// </summary>
public sealed class RedisResponseStore(RedisConnection redis, string prefix, ResponsesOptions options) : IResponseStore
{
    /// <inheritdoc />
    public async Task PutAsync(string tenantPath, StoredResponse response)
    {
        var buffer = new ArrayBufferWriter<byte>(response.HistoryJson.Length + response.ResponseJson.Length + 64);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("s", response.SessionKey);
            w.WritePropertyName("h");
            w.WriteRawValue(response.HistoryJson, skipInputValidation: true);
            w.WritePropertyName("r");
            w.WriteRawValue(response.ResponseJson, skipInputValidation: true);
            w.WriteEndObject();
        }

        await redis.RunAsync("SET", db => db.StringSetAsync(Key(tenantPath, response.Id), buffer.WrittenMemory, options.Ttl)).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<StoredResponse?> GetAsync(string tenantPath, string id)
    {
        var value = await redis.RunAsync("GET", db => db.StringGetAsync(Key(tenantPath, id))).ConfigureAwait(false);
        if (value.IsNull)
        {
            return null;
        }

        using var doc = JsonDocument.Parse((ReadOnlyMemory<byte>)value);
        var root = doc.RootElement;
        return new StoredResponse(
            id,
            root.GetProperty("s").GetString() ?? id,
            Encoding.UTF8.GetBytes(root.GetProperty("h").GetRawText()),
            Encoding.UTF8.GetBytes(root.GetProperty("r").GetRawText()));
    }

    /// <inheritdoc />
    public Task<bool> DeleteAsync(string tenantPath, string id) =>
        redis.RunAsync("DEL", db => db.KeyDeleteAsync(Key(tenantPath, id)));

    // The path's length first: no (path, id) pair can spell another tenant's key, whatever characters either holds.
    private RedisKey Key(string tenantPath, string id) =>
        prefix + "resp:" + tenantPath.Length.ToString(System.Globalization.CultureInfo.InvariantCulture) + ":" + tenantPath + ":" + id;
}
