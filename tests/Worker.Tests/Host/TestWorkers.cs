using System.ClientModel;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Llm.Prompt.Hashing;
using Llm.Prompt.OpenAi;
using Llm.Prompt.Tokenization;
using OpenAI;

namespace Worker.Tests.Host;

/// <summary>Starts real workers on 127.0.0.1 ephemeral ports and builds clients for them.</summary>
internal static class TestWorkers
{
    public const string Model = "llama3-8b";

    /// <summary>A worker with a small KV pool; time scale 0 (no sleeping) unless a test measures time.</summary>
    public static Task<WorkerHost> StartAsync(double timeScale = 0, int kvBlocks = 4096, int maxModelLength = 131072,
        int kvEventCapacity = 100_000, long maxBodyBytes = 16 * 1024 * 1024, string profile = "h100-llama3-8b", string tokenizer = "default") =>
        WorkerHost.StartAsync(new WorkerOptions
        {
            Url = "http://127.0.0.1:0",
            Profile = profile,
            KvBlocks = kvBlocks,
            TimeScale = timeScale,
            MaxModelLength = maxModelLength,
            KvEventCapacity = kvEventCapacity,
            MaxRequestBodyBytes = maxBodyBytes,
            Tokenizer = tokenizer,
        });

    public static OpenAIClient Client(WorkerHost host) =>
        new(new ApiKeyCredential("sk-test-not-a-secret"), new OpenAIClientOptions
        {
            Endpoint = new Uri(host.BaseAddress, "v1"),
            NetworkTimeout = TimeSpan.FromSeconds(60),
        });

    public static HttpClient Http(WorkerHost host) => new() { BaseAddress = host.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };

    public static async Task<(int Status, JsonElement Json)> PostJsonAsync(HttpClient http, string path, string body, params (string Name, string Value)[] headers)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8) };
        req.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        foreach (var (n, v) in headers)
        {
            req.Headers.TryAddWithoutValidation(n, v);
        }

        using var resp = await http.SendAsync(req);
        string text = await resp.Content.ReadAsStringAsync();
        return ((int)resp.StatusCode, JsonDocument.Parse(text).RootElement.Clone());
    }

    public static async Task<JsonElement> GetJsonAsync(HttpClient http, string path)
    {
        using var resp = await http.GetAsync(path);
        Assert.Equal(200, (int)resp.StatusCode);
        return JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    /// <summary>English-like text of about <paramref name="words"/> words, distinct per <paramref name="tag"/>.</summary>
    public static string Text(int words, string tag)
    {
        string[] vocab = ["river", "stone", "cloud", "quiet", "engine", "garden", "silver", "window", "paper", "morning", "table", "signal"];
        var sb = new StringBuilder(words * 7);
        sb.Append(tag);
        for (int i = 0; i < words; i++)
        {
            sb.Append(' ').Append(vocab[(i * 7 + tag.Length) % vocab.Length]);
            if (i % 13 == 12)
            {
                sb.Append('.');
            }
        }

        return sb.ToString();
    }

    /// <summary>The prompt tokens of a body under <paramref name="tokenizer"/> (the usage a worker reports).</summary>
    public static int PromptTokensOf(string body, OpenAiEndpoint endpoint, string tokenizer = "default")
    {
        Assert.True(OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(body), endpoint, out var req, out var err), err?.Message);
        return Tokenizers.Create(tokenizer).CountTokens(req!.PromptText);
    }

    /// <summary>The block hashes the worker (and gateway) derive from a body, via the shared parser and
    /// <c>Tokenizers.Create(tokenizer)</c> (what the gateway's <c>Routing:Tokenizer</c> resolves through).</summary>
    public static ulong[] BlockHashesOf(string body, OpenAiEndpoint endpoint, string? salt = null, int blockSize = 16, string tokenizer = "default")
    {
        Assert.True(OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(body), endpoint, out var req, out var err), err?.Message);
        var tokens = new List<int>();
        Tokenizers.Create(tokenizer).Encode(req!.PromptText, tokens);
        return BlockHasher.ComputeChain(tokens.ToArray(), BlockHasher.SaltOf(salt), blockSize);
    }

    /// <summary>Prompt tokens of a chat body as the worker counts them.</summary>
    public static int PromptTokensOf(string body)
    {
        Assert.True(OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(body), OpenAiEndpoint.ChatCompletions, out var req, out var err), err?.Message);
        return DefaultTokenizer.Instance.CountTokens(req!.PromptText);
    }

    public static string ChatBody(string content, int? maxTokens = 8, bool stream = false, string extra = "") =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["model"] = Model,
            ["messages"] = new[] { new Dictionary<string, string> { ["role"] = "user", ["content"] = content } },
            ["max_tokens"] = maxTokens,
            ["stream"] = stream,
        })[..^1] + extra + "}";

    /// <summary>Polls <paramref name="condition"/> (bounded) until it holds.</summary>
    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(20);
        }

        return condition();
    }
}

/// <summary>Tests that compare wall-clock timings run alone, after the parallel ones, so CPU contention does not skew them.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TimingCollection
{
    public const string Name = "worker timing";
}
