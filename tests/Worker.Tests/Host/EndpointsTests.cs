using System.Text;
using System.Text.Json;
using OpenAI.Embeddings;
using OpenAI.Models;

namespace Worker.Tests.Host;

/// <summary>/v1/completions, /v1/embeddings, /v1/models, /healthz, unknown routes, and several workers in one process.</summary>
public sealed class EndpointsTests : IAsyncLifetime
{
    private WorkerHost _host = null!;

    public async Task InitializeAsync() => _host = await TestWorkers.StartAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task Completions_NonStreaming_ReturnsTextCompletionWithUsage()
    {
        using var http = TestWorkers.Http(_host);
        var (status, json) = await TestWorkers.PostJsonAsync(http, "/v1/completions",
            """{"model":"llama3-8b","prompt":"Once upon a time","max_tokens":7}""");
        Assert.Equal(200, status);
        Assert.Equal("text_completion", json.GetProperty("object").GetString());
        Assert.StartsWith("cmpl-", json.GetProperty("id").GetString(), StringComparison.Ordinal);
        var choice = json.GetProperty("choices")[0];
        Assert.False(string.IsNullOrEmpty(choice.GetProperty("text").GetString()));
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        var usage = json.GetProperty("usage");
        Assert.Equal(7, usage.GetProperty("completion_tokens").GetInt32());
        Assert.Equal(Llm.Prompt.Tokenization.DefaultTokenizer.Instance.CountTokens("Once upon a time"), usage.GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Completions_Streaming_ChunksConcatenateToTheText()
    {
        using var http = TestWorkers.Http(_host);
        string body = """{"model":"llama3-8b","prompt":"Once upon a time","max_tokens":7}""";
        var (_, whole) = await TestWorkers.PostJsonAsync(http, "/v1/completions", body);
        string streamBody = body[..^1] + ""","stream":true,"stream_options":{"include_usage":true}}""";
        using var resp = await http.PostAsync("/v1/completions", new StringContent(streamBody, Encoding.UTF8, "application/json"));
        var events = (await resp.Content.ReadAsStringAsync()).Split("\n\n", StringSplitOptions.RemoveEmptyEntries).Select(e => e["data: ".Length..]).ToList();
        Assert.Equal("[DONE]", events[^1]);
        var sb = new StringBuilder();
        string? finish = null;
        foreach (var e in events.Take(events.Count - 2))
        {
            var c = JsonDocument.Parse(e).RootElement.GetProperty("choices")[0];
            Assert.Equal("text_completion", JsonDocument.Parse(e).RootElement.GetProperty("object").GetString());
            sb.Append(c.GetProperty("text").GetString());
            if (c.GetProperty("finish_reason").ValueKind == JsonValueKind.String)
            {
                finish = c.GetProperty("finish_reason").GetString();
            }
        }

        Assert.Equal(whole.GetProperty("choices")[0].GetProperty("text").GetString(), sb.ToString());
        Assert.Equal("length", finish);
        Assert.Equal(7, JsonDocument.Parse(events[^2]).RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Embeddings_OfficialClient_DeterministicUnitVectors()
    {
        var client = TestWorkers.Client(_host).GetEmbeddingClient(TestWorkers.Model);
        OpenAIEmbedding a = await client.GenerateEmbeddingAsync("the quick brown fox");
        OpenAIEmbedding b = await client.GenerateEmbeddingAsync("the quick brown fox");
        OpenAIEmbedding c = await client.GenerateEmbeddingAsync("a different sentence");
        var va = a.ToFloats().ToArray();
        Assert.Equal(256, va.Length);
        Assert.Equal(va, b.ToFloats().ToArray());
        Assert.InRange(va.Sum(x => (double)x * x), 0.999, 1.001);
        double dot = va.Zip(c.ToFloats().ToArray(), (x, y) => (double)x * y).Sum();
        Assert.InRange(dot, -0.5, 0.5);

        OpenAIEmbeddingCollection batch = await client.GenerateEmbeddingsAsync(["one", "two", "three"], new EmbeddingGenerationOptions { Dimensions = 64 });
        Assert.Equal(3, batch.Count);
        Assert.All(batch, e => Assert.Equal(64, e.ToFloats().Length));
        Assert.Equal(3, batch.Usage.InputTokenCount);
    }

    [Fact]
    public async Task Embeddings_FloatFormat_MatchesBase64()
    {
        using var http = TestWorkers.Http(_host);
        var (_, f) = await TestWorkers.PostJsonAsync(http, "/v1/embeddings", """{"model":"llama3-8b","input":"hello","encoding_format":"float","dimensions":8}""");
        var (_, b) = await TestWorkers.PostJsonAsync(http, "/v1/embeddings", """{"model":"llama3-8b","input":["hello"],"encoding_format":"base64","dimensions":8}""");
        var floats = f.GetProperty("data")[0].GetProperty("embedding").EnumerateArray().Select(x => x.GetSingle()).ToArray();
        var bytes = Convert.FromBase64String(b.GetProperty("data")[0].GetProperty("embedding").GetString()!);
        var decoded = new float[bytes.Length / 4];
        Buffer.BlockCopy(bytes, 0, decoded, 0, bytes.Length);
        Assert.Equal(floats, decoded);
        Assert.Equal(1, f.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Models_ListsServedModel_AndUnknownModelIs404()
    {
        var models = TestWorkers.Client(_host).GetOpenAIModelClient();
        OpenAIModelCollection list = await models.GetModelsAsync();
        Assert.Equal(TestWorkers.Model, Assert.Single(list).Id);
        OpenAIModel one = await models.GetModelAsync(TestWorkers.Model);
        Assert.Equal("reference-worker", one.OwnedBy);

        using var http = TestWorkers.Http(_host);
        using var resp = await http.GetAsync("/v1/models/gpt-nope");
        Assert.Equal(404, (int)resp.StatusCode);
        var err = JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("model_not_found", err.GetProperty("code").GetString());
    }

    [Fact]
    public async Task Healthz_Ok_UnknownRoute_OpenAiShaped404()
    {
        using var http = TestWorkers.Http(_host);
        var health = await TestWorkers.GetJsonAsync(http, "/healthz");
        Assert.Equal("ok", health.GetProperty("status").GetString());

        using var resp = await http.GetAsync("/v2/whatever");
        Assert.Equal(404, (int)resp.StatusCode);
        var err = JsonDocument.Parse(await resp.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", err.GetProperty("type").GetString());
        Assert.Equal("unknown_url", err.GetProperty("code").GetString());
    }

    [Fact]
    public async Task SeveralHosts_OneProcess_EachOnItsOwnPortAndEngine()
    {
        var hosts = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => TestWorkers.StartAsync()));
        try
        {
            Assert.Equal(4, hosts.Select(h => h.BaseAddress.Port).Distinct().Count());
            Assert.All(hosts, h => Assert.Equal("127.0.0.1", h.BaseAddress.Host));
            string body = TestWorkers.ChatBody(TestWorkers.Text(200, "multi"), 2);
            using (var http0 = TestWorkers.Http(hosts[0]))
            {
                await TestWorkers.PostJsonAsync(http0, "/v1/chat/completions", body);
            }

            // Only worker 0 has the prefix cached: engines are separate.
            Assert.True(hosts[0].GetEngineState().KvBlocksCached > 0);
            Assert.All(hosts.Skip(1), h => Assert.Equal(0, h.GetEngineState().KvBlocksCached));
            foreach (var h in hosts)
            {
                using var http = TestWorkers.Http(h);
                var (status, _) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);
                Assert.Equal(200, status);
            }
        }
        finally
        {
            foreach (var h in hosts)
            {
                await h.DisposeAsync();
            }
        }
    }
}
