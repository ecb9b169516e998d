using System.Net.Http.Headers;
using System.Text.Json;

namespace LoadGen.Client;

/// <summary>Finds the model to send when the user names none: the first id of <c>GET /v1/models</c>.</summary>
public static class ModelDiscovery
{
    /// <summary>The first model id, or null when the endpoint does not answer in 5 s or lists none.</summary>
    public static async Task<string?> FirstModelAsync(HttpClient http, Uri baseUrl, string? apiKey, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(5));
        try
        {
            using var msg = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUrl, "v1/models"));
            if (!string.IsNullOrEmpty(apiKey))
            {
                msg.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
            }

            using var resp = await http.SendAsync(msg, timeout.Token).ConfigureAwait(false);
            if (!resp.IsSuccessStatusCode)
            {
                return null;
            }

            using var doc = JsonDocument.Parse(await resp.Content.ReadAsByteArrayAsync(timeout.Token).ConfigureAwait(false));
            if (doc.RootElement.TryGetProperty("data", out var data) && data.ValueKind == JsonValueKind.Array && data.GetArrayLength() > 0 &&
                data[0].TryGetProperty("id", out var id) && id.ValueKind == JsonValueKind.String)
            {
                return id.GetString();
            }
        }
        catch (HttpRequestException)
        {
        }
        catch (OperationCanceledException)
        {
        }
        catch (JsonException)
        {
        }

        return null;
    }
}
