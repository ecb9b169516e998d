using System.Diagnostics;

namespace Gateway.Tests.Infrastructure;

/// <summary>Reads an SSE response event by event, with the arrival time of each.</summary>
public static class Sse
{
    public static async Task<List<(string Data, TimeSpan At)>> ReadAllAsync(HttpResponseMessage resp, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        var events = new List<(string, TimeSpan)>();
        using var stream = await resp.Content.ReadAsStreamAsync(ct);
        using var reader = new StreamReader(stream);
        string? line;
        while ((line = await reader.ReadLineAsync(ct)) is not null)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                events.Add((line[6..], sw.Elapsed));
            }
        }

        return events;
    }

    public static HttpRequestMessage ChatStream(string body, params (string Name, string Value)[] headers)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = TestGateway.Json(body) };
        foreach (var (n, v) in headers)
        {
            req.Headers.TryAddWithoutValidation(n, v);
        }

        return req;
    }
}
