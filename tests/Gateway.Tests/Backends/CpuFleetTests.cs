using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Core.Routing.KvAware;
using Gateway.Hosting;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;
using Worker;
using Worker.Cpu;

namespace Gateway.Tests.Backends;

/// <summary>
/// The gateway in front of two cpu-backend workers (real Llama forward passes over a seeded random GGUF, in-process
/// Kestrel on 127.0.0.1), driven by the official OpenAI client. The gateway hashes the model's prompts with the
/// <c>bytes</c> tokenizer (Routing:ModelTokenizers), so kv-aware routing predicts the workers' real prefix caches.
/// </summary>
public sealed class CpuFleetTests : IAsyncLifetime
{
    private const string Model = "tiny-cpu";
    private string _dir = null!;
    private WorkerHost _w1 = null!;
    private WorkerHost _w2 = null!;
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("cpu-fleet").FullName;
        string path = Path.Combine(_dir, "tiny.gguf");
        RandomLlamaGguf.Write(path, new LlamaShape(Vocab: 300, Dim: 64, Layers: 2, Heads: 4, KvHeads: 2, Hidden: 160, MaxContext: 4096), seed: 11);
        var options = new WorkerOptions { Backend = "cpu", ModelPath = path, ModelName = Model, Threads = 1, KvBlocks = 512 };
        _w1 = await WorkerHost.StartAsync(options);
        _w2 = await WorkerHost.StartAsync(options);
        _gw = await TestGateway.StartAsync(
            [_w1.BaseAddress.ToString().TrimEnd('/'), _w2.BaseAddress.ToString().TrimEnd('/')],
            new Dictionary<string, string?> { [$"Gateway:Routing:ModelTokenizers:{Model}"] = "bytes" });
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _w1.DisposeAsync();
        await _w2.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private ChatClient Chat() =>
        new(Model, new ApiKeyCredential(TestGateway.DemoKey), new OpenAIClientOptions { Endpoint = new Uri(_gw.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    [Fact]
    public async Task Chat_and_streaming_return_the_same_greedy_text_with_real_token_usage()
    {
        var chat = Chat();
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 24 };
        ChatCompletion full = await chat.CompleteChatAsync([new UserChatMessage("Tell me about paged attention.")], options);
        Assert.Equal(ChatMessageRole.Assistant, full.Role);
        Assert.True(full.FinishReason is ChatFinishReason.Length or ChatFinishReason.Stop);
        Assert.InRange(full.Usage.OutputTokenCount, 1, 24);
        // The prompt is the rendered chat in UTF-8 bytes: at least the message's own bytes.
        Assert.True(full.Usage.InputTokenCount > Encoding.UTF8.GetByteCount("Tell me about paged attention."));

        var text = new StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Tell me about paged attention.")], options))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal(full.Content.Count == 0 ? "" : full.Content[0].Text, text.ToString()); // greedy: same tokens, same text
        Assert.Equal(full.FinishReason, finish);
        Assert.NotNull(usage);
        Assert.Equal(full.Usage.OutputTokenCount, usage!.OutputTokenCount);
        Assert.Equal(full.Usage.InputTokenCount, usage.InputTokenCount);
    }

    [Fact]
    public async Task Completions_endpoint_returns_text_and_usage()
    {
        using var http = new HttpClient { BaseAddress = _gw.BaseAddress };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", TestGateway.DemoKey);
        using var response = await http.PostAsync("v1/completions", new StringContent(
            $$"""{"model":"{{Model}}","prompt":"Once upon a time","max_tokens":10}""", Encoding.UTF8, "application/json"));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        using var doc = JsonDocument.Parse(body);
        var root = doc.RootElement;
        Assert.Equal("text_completion", root.GetProperty("object").GetString());
        Assert.Equal(JsonValueKind.String, root.GetProperty("choices")[0].GetProperty("text").ValueKind);
        Assert.Equal(16, root.GetProperty("usage").GetProperty("prompt_tokens").GetInt32()); // "Once upon a time" = 16 bytes
        Assert.InRange(root.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 10);
    }

    [Fact]
    public async Task Repeated_long_prompts_are_routed_to_the_worker_holding_their_kv()
    {
        var subs = _gw.Services.GetRequiredService<KvEventSubscriptions>();
        await WaitUntilAsync(() => subs.Active == 2);
        var chat = Chat();
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 2 };
        var precise = ((KvAwarePolicy)_gw.Services.GetRequiredService<ProxyHandler>().Policy).Precise;
        const int docs = 3;
        for (int doc = 0; doc < docs; doc++)
        {
            string prompt = string.Join(' ', Enumerable.Range(0, 25).Select(i => $"document {doc} sentence {i} about KV reuse."));
            ChatCompletion first = await chat.CompleteChatAsync([new UserChatMessage(prompt)], options);
            // The first prompt's blocks reach the index as the workers' KV events (its speculative entry lasts 2 s, which a
            // loaded test machine can outlast): the repeat is routed once the index has every event the workers emitted.
            await WaitUntilAsync(() => precise.LastSeq(0) + precise.LastSeq(1) >= _w1.GetEngineState().KvEventSeq + _w2.GetEngineState().KvEventSeq);
            ChatCompletion again = await chat.CompleteChatAsync([new UserChatMessage(prompt)], options);
            Assert.True(first.Usage.InputTokenDetails.CachedTokenCount <= 32, "at most the chat template's shared head is cached on a first sight");
            Assert.True(again.Usage.InputTokenDetails.CachedTokenCount >= first.Usage.InputTokenCount - 32,
                $"doc {doc}: {again.Usage.InputTokenDetails.CachedTokenCount} of {again.Usage.InputTokenCount} prompt tokens cached");
        }

        // The policy predicted the hit the worker reported (same byte tokens, same salted block hashes on both sides).
        // Regret entries are recorded when the proxied response completes, which may be just after the client has it.
        var regret = _gw.Services.GetRequiredService<RecentRegret>();
        await WaitUntilAsync(() => regret.Snapshot().Count(e => e.ActualCachedTokens > 100) == docs);
        var repeats = regret.Snapshot().Where(e => e.ActualCachedTokens > 100).ToList();
        Assert.All(repeats, e => Assert.True(Math.Abs(e.PredictedCachedTokens - e.ActualCachedTokens) <= 16, $"predicted {e.PredictedCachedTokens} actual {e.ActualCachedTokens}"));
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), "condition not reached within 20 s");
            await Task.Delay(20);
        }
    }
}

/// <summary>The embedded default switched to cpu-backend workers by configuration alone; it then hashes with <c>bytes</c>.</summary>
public sealed class EmbeddedCpuFleetTests : IAsyncLifetime
{
    private const string Key = "sk-cpu-embedded";
    private string _dir = null!;
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _dir = Directory.CreateTempSubdirectory("cpu-embedded").FullName;
        string path = Path.Combine(_dir, "tiny.gguf");
        RandomLlamaGguf.Write(path, new LlamaShape(Vocab: 300, Dim: 64, Layers: 2, Heads: 4, KvHeads: 2, Hidden: 160), seed: 12);
        _gw = await TestGateway.StartEmbeddedAsync([(Key, "org/team/key")], new Dictionary<string, string?>
        {
            ["Gateway:Workers:Embedded:Count"] = "2",
            ["Gateway:Workers:Embedded:Backend"] = "cpu",
            ["Gateway:Workers:Embedded:Model"] = path,
            ["Gateway:Workers:Embedded:Threads"] = "1",
            ["Gateway:Workers:Embedded:KvBlocks"] = "256",
        });
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Serves_the_gguf_and_predicts_its_prefix_hits()
    {
        var chat = new ChatClient("tiny", new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = new Uri(_gw.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
        string prompt = string.Join(' ', Enumerable.Range(0, 20).Select(i => $"embedded sentence {i} about KV reuse."));
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 2 };
        ChatCompletion first = await chat.CompleteChatAsync([new UserChatMessage(prompt)], options);
        ChatCompletion again = await chat.CompleteChatAsync([new UserChatMessage(prompt)], options);
        Assert.True(again.Usage.InputTokenDetails.CachedTokenCount >= first.Usage.InputTokenCount - 32);
        var regret = _gw.Services.GetRequiredService<RecentRegret>();
        var sw = Stopwatch.StartNew();
        while (!regret.Snapshot().Any(e => e.ActualCachedTokens > 100))
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(20), "the repeat's routing outcome was not recorded within 20 s");
            await Task.Delay(20);
        }

        var hit = regret.Snapshot().First(e => e.ActualCachedTokens > 100);
        Assert.True(Math.Abs(hit.PredictedCachedTokens - hit.ActualCachedTokens) <= 16, $"predicted {hit.PredictedCachedTokens} actual {hit.ActualCachedTokens}");
    }
}
