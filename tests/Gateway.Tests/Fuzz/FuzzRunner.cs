using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;

namespace Gateway.Tests.Fuzz;

/// <summary>What one fuzz run saw.</summary>
internal sealed class FuzzReport
{
    public required string Target { get; init; }

    public required ulong Seed { get; init; }

    public int Inputs;

    public TimeSpan Elapsed { get; set; }

    public ConcurrentDictionary<string, int> Statuses { get; } = new();

    /// <summary>Every bad answer (5xx, unshaped error body, no answer), the first 50 with their input.</summary>
    public ConcurrentQueue<string> Failures { get; } = new();

    public int FailureCount;

    public bool ReadyAfter { get; set; }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"### {Target}: {Inputs} inputs, seed {Seed}, {Elapsed.TotalSeconds:F0} s");
        sb.AppendLine();
        sb.AppendLine("| endpoint | status | answers |");
        sb.AppendLine("|---|---|---|");
        foreach (var (key, count) in Statuses.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            int space = key.IndexOf(' ', StringComparison.Ordinal);
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {key[..space]} | {key[(space + 1)..]} | {count} |");
        }

        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"- 5xx, unshaped error bodies or requests without an answer: **{FailureCount}**");
        sb.AppendLine(CultureInfo.InvariantCulture, $"- ready after the run (`/readyz` 200 and a plain chat request 200): **{(ReadyAfter ? "yes" : "NO")}**");
        foreach (var f in Failures)
        {
            sb.AppendLine().AppendLine("```").AppendLine(f).AppendLine("```");
        }

        return sb.ToString();
    }
}

/// <summary>
/// Sends FsCheck-generated requests to a live server (input <c>i</c> is drawn from seed <c>seed + i</c>, so any input can
/// be drawn again) from a few parallel clients and checks every answer: no 5xx, every error body in its endpoint's
/// shape, every 200 a JSON body or an SSE stream that ends in <c>[DONE]</c>, every request answered.
/// Requests Kestrel may refuse before any application code runs (a header flood, header bytes outside visible ASCII)
/// and that it does refuse with its own empty 400/431, or by closing the connection, are counted apart as <c>kestrel</c>;
/// so are bodies past the server's hard body limit (twice its 413 limit) whose connection is closed after the 413.
/// </summary>
internal sealed class FuzzRunner(Uri target, Gen<FuzzInput> inputs, long bodyHardLimit)
{
    private const int MaxFailuresKept = 50;

    public async Task<FuzzReport> RunAsync(string name, int count, ulong seed, int parallel, Func<HttpClient, Task<bool>> readyCheck)
    {
        var report = new FuzzReport { Target = name, Seed = seed };
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = parallel,
            AutomaticDecompression = System.Net.DecompressionMethods.None,
            // Header values go out as Latin-1 bytes, so odd bytes reach the server instead of being refused here.
            RequestHeaderEncodingSelector = static (_, _) => Encoding.Latin1,
        };
        using var http = new HttpClient(handler) { BaseAddress = target, Timeout = TimeSpan.FromSeconds(60) };
        var sw = Stopwatch.StartNew();
        int next = -1;
        var clients = Enumerable.Range(0, parallel).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var input = inputs.Sample(1, new Rnd(seed + (ulong)i), 1 + (i % 100))[0];
                await SendAsync(http, input, seed + (ulong)i, report).ConfigureAwait(false);
                Interlocked.Increment(ref report.Inputs);
            }
        })).ToArray();
        await Task.WhenAll(clients).ConfigureAwait(false);
        report.Elapsed = sw.Elapsed;
        report.ReadyAfter = await readyCheck(http).ConfigureAwait(false);
        return report;
    }

    private async Task SendAsync(HttpClient http, FuzzInput input, ulong inputSeed, FuzzReport report)
    {
        using var req = new HttpRequestMessage(new HttpMethod(input.Method), input.Path);
        string? contentType = null;
        foreach (var (n, v) in input.Headers)
        {
            if (n == "Content-Type")
            {
                contentType = v;
            }
            else
            {
                req.Headers.TryAddWithoutValidation(n, v);
            }
        }

        if (input.Body is not null)
        {
            req.Content = new ByteArrayContent(input.Body);
            if (contentType is not null)
            {
                req.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
            }

            req.Headers.TransferEncodingChunked = input.Chunked;
        }

        string verdict;
        string status;
        string snippet = "";
        try
        {
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            status = ((int)resp.StatusCode).ToString(CultureInfo.InvariantCulture);
            var body = await ReadCappedAsync(resp).ConfigureAwait(false);
            snippet = Encoding.UTF8.GetString(body, 0, Math.Min(body.Length, 600));
            (verdict, status) = Judge(input, resp, body, status);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            // A server may close the connection after refusing a request it cannot read (Kestrel does so after a 431
            // it has written); the client then sees a reset while still sending. Only a flood may end that way.
            bool refusable = input.KestrelMayRefuse || input.Body?.Length > bodyHardLimit;
            status = refusable ? "reset kestrel" : "no-answer";
            verdict = refusable ? "" : $"no answer: {ex.GetType().Name}: {ex.Message}";
        }

        report.Statuses.AddOrUpdate($"{input.Endpoint} {status}", 1, static (_, c) => c + 1);
        if (verdict.Length > 0)
        {
            Interlocked.Increment(ref report.FailureCount);
            if (report.Failures.Count < MaxFailuresKept)
            {
                report.Failures.Enqueue(Describe(input, inputSeed, verdict, snippet));
            }
        }
    }

    private static (string Verdict, string Status) Judge(FuzzInput input, HttpResponseMessage resp, byte[] body, string status)
    {
        int code = (int)resp.StatusCode;
        if (code >= 500)
        {
            return ($"HTTP {code}", status);
        }

        if (code >= 400)
        {
            if (code is 400 or 431 && input.KestrelMayRefuse && body.Length == 0)
            {
                return ("", $"{code} kestrel");
            }

            return (ErrorShapeProblem(body, input.Shape) is { } problem ? $"HTTP {code} error body not {input.Shape}-shaped: {problem}" : "", status);
        }

        if (resp.Content.Headers.ContentType?.MediaType == "text/event-stream")
        {
            // OpenAI streams end with data: [DONE]; Anthropic ones with a message_stop event.
            string text = Encoding.UTF8.GetString(body).TrimEnd();
            // Responses streams end with a response.completed / incomplete / failed event.
            string[] ends = input.Shape == ErrorShape.Anthropic ? ["event: message_stop"]
                : input.Endpoint == "responses" ? ["event: response.completed", "event: response.incomplete", "event: response.failed"]
                : ["data: [DONE]"];
            int lastEvent = text.LastIndexOf("event: ", StringComparison.Ordinal);
            bool ended = ends.Any(e => e.StartsWith("event: ", StringComparison.Ordinal)
                ? lastEvent >= 0 && text.AsSpan(lastEvent).StartsWith(e, StringComparison.Ordinal)
                : text.EndsWith(e, StringComparison.Ordinal));
            string end = string.Join(" or ", ends);
            return (ended || body.Length >= ReadCap ? "" : $"stream does not end with {end}: …{text[Math.Max(0, text.Length - 300)..]}", status + " stream");
        }

        return (body.Length >= ReadCap || IsJson(body) ? "" : "200 body is not JSON", status);
    }

    /// <summary>Null when <paramref name="body"/> is the endpoint's error shape, else what is wrong with it.</summary>
    public static string? ErrorShapeProblem(byte[] body, ErrorShape shape)
    {
        if (body.Length == 0)
        {
            return "empty body";
        }

        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (shape == ErrorShape.Anthropic)
            {
                return root.ValueKind == JsonValueKind.Object && root.TryGetProperty("type", out var t) && t.ValueEquals("error")
                    && root.TryGetProperty("error", out var ae) && ae.ValueKind == JsonValueKind.Object
                    && IsString(ae, "type") && IsString(ae, "message")
                    ? null
                    : "not {\"type\":\"error\",\"error\":{\"type\",\"message\"}}";
            }

            return root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object
                && IsString(e, "message") && IsString(e, "type") && IsStringOrNull(e, "param") && IsStringOrNull(e, "code")
                ? null
                : "not {\"error\":{\"message\",\"type\",\"param\",\"code\"}}";
        }
        catch (JsonException)
        {
            return "not JSON";
        }
    }

    private static bool IsString(JsonElement o, string name) => o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String;

    private static bool IsStringOrNull(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.String or JsonValueKind.Null;

    private static bool IsJson(byte[] body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private const int ReadCap = 32 * 1024 * 1024;

    private static async Task<byte[]> ReadCappedAsync(HttpResponseMessage resp)
    {
        await using var stream = await resp.Content.ReadAsStreamAsync().ConfigureAwait(false);
        using var ms = new MemoryStream();
        var buffer = new byte[64 * 1024];
        int n;
        while (ms.Length < ReadCap && (n = await stream.ReadAsync(buffer).ConfigureAwait(false)) > 0)
        {
            ms.Write(buffer, 0, n);
        }

        return ms.ToArray();
    }

    /// <summary>The input, printable: method, path, headers (long values cut) and the body with odd bytes as \xNN.</summary>
    public static string Describe(FuzzInput input, ulong inputSeed, string verdict, string responseSnippet)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"{verdict}  (input seed {inputSeed})");
        sb.AppendLine(CultureInfo.InvariantCulture, $"{input.Method} {Cut(input.Path, 200)}{(input.Chunked ? "  [chunked]" : "")}");
        foreach (var (n, v) in input.Headers.Take(12))
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"{n}: {Printable(Encoding.Latin1.GetBytes(Cut(v, 120)))}");
        }

        if (input.Headers.Count > 12)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"... {input.Headers.Count - 12} more headers");
        }

        if (input.Body is { } body)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"body ({body.Length} bytes): {Cut(Printable(body.AsSpan(0, Math.Min(body.Length, 2000))), 600)}");
        }

        sb.Append("response: ").Append(responseSnippet);
        return sb.ToString();
    }

    private static string Cut(string s, int max) => s.Length <= max ? s : s[..max] + $"…({s.Length} chars)";

    private static string Printable(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(bytes.Length);
        foreach (byte b in bytes)
        {
            if (b is >= 0x20 and < 0x7F)
            {
                sb.Append((char)b);
            }
            else
            {
                sb.Append(CultureInfo.InvariantCulture, $"\\x{b:X2}");
            }
        }

        return sb.ToString();
    }
}
