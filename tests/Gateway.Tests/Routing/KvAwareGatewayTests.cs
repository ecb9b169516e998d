using System.ClientModel;
using System.ClientModel.Primitives;
using System.Diagnostics;
using Gateway.Auth;
using Gateway.Core.Routing.KvAware;
using Gateway.Hosting;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Routing;

/// <summary>
/// kv-aware routing live: the gateway's default policy, fed by every in-process worker's KV event stream, in front
/// of 4 embedded reference workers (real engines with prefix caches), driven by the official OpenAI client.
/// </summary>
public sealed class KvAwareGatewayTests : IAsyncLifetime
{
    private const string KeyA = "sk-kv-a";
    private const string KeyB = "sk-kv-b";
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _gw = await TestGateway.StartEmbeddedAsync([(KeyA, "org-a/team/key"), (KeyB, "org-b/team/key")]);
    }

    public async Task DisposeAsync() => await _gw.DisposeAsync();

    private ChatClient Chat(string key) =>
        new("llama3-8b", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(_gw.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });

    private static string LongPrompt(string topic) =>
        string.Join(' ', Enumerable.Range(0, 400).Select(i => $"{topic} paragraph {i} explains a detail of the system"));

    [Fact]
    public void DefaultPolicy_IsKvAware_WithOneSubscriberPerWorker()
    {
        Assert.IsType<KvAwarePolicy>(_gw.Services.GetRequiredService<ProxyHandler>().Policy);
    }

    [Fact]
    public async Task SamePromptRepeated_OneTenant_LandsOnOneWorkerWithCachedTokens()
    {
        var subs = _gw.Services.GetRequiredService<KvEventSubscriptions>();
        await WaitUntilAsync(() => subs.Active == 4);
        var client = Chat(KeyA);
        string prompt = LongPrompt("caching");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 4 };
        var cached = new List<int>();
        for (int i = 0; i < 5; i++)
        {
            ChatCompletion c = await client.CompleteChatAsync([new UserChatMessage(prompt)], options);
            cached.Add(c.Usage.InputTokenDetails.CachedTokenCount);
            Assert.True(c.Usage.InputTokenCount > 1000);
        }

        Assert.Equal(0, cached[0]);
        Assert.All(cached.Skip(1), n => Assert.True(n > 1000, $"cached tokens after the first: {string.Join(",", cached)}"));
        var recent = _gw.Services.GetRequiredService<RecentRegret>().Snapshot().Take(5).ToList();
        Assert.Single(recent.Select(e => e.Worker).Distinct());
        // Routing regret: from the second request on, the policy predicted the hit the worker reported.
        Assert.All(recent.Take(4), e => Assert.True(e.PredictedCachedTokens > 1000 && Math.Abs(e.PredictedCachedTokens - e.ActualCachedTokens) <= 64, $"predicted {e.PredictedCachedTokens} actual {e.ActualCachedTokens}"));
        var policy = (KvAwarePolicy)_gw.Services.GetRequiredService<ProxyHandler>().Policy;
        Assert.True(policy.Regret.Completed >= 5);
        await WaitUntilAsync(() => subs.EventsApplied > 0); // the workers' KV events reached the precise index
    }

    [Fact]
    public async Task SamePrompt_TwoTenants_DoNotShareCache()
    {
        // One worker, so every request lands where the other tenant's KV is: B finding nothing there is the salt
        // working, not routing sending it elsewhere (and routing cannot make A's second request miss).
        await using var one = await TestGateway.StartEmbeddedAsync(
            [(KeyA, "org-a/team/key"), (KeyB, "org-b/team/key")], new Dictionary<string, string?> { ["Gateway:Workers:Embedded:Count"] = "1" });
        ChatClient On(string key) =>
            new("llama3-8b", new ApiKeyCredential(key), new OpenAIClientOptions { Endpoint = new Uri(one.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
        string prompt = LongPrompt("isolation");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 4 };
        ChatCompletion a1 = await On(KeyA).CompleteChatAsync([new UserChatMessage(prompt)], options);
        ChatCompletion a2 = await On(KeyA).CompleteChatAsync([new UserChatMessage(prompt)], options);
        ChatCompletion b1 = await On(KeyB).CompleteChatAsync([new UserChatMessage(prompt)], options);
        ChatCompletion b2 = await On(KeyB).CompleteChatAsync([new UserChatMessage(prompt)], options);
        Assert.Equal(0, a1.Usage.InputTokenDetails.CachedTokenCount);
        Assert.True(a2.Usage.InputTokenDetails.CachedTokenCount > 1000);
        Assert.Equal(0, b1.Usage.InputTokenDetails.CachedTokenCount); // different org, different salt: no shared KV on the same worker
        Assert.True(b2.Usage.InputTokenDetails.CachedTokenCount > 1000);
    }

    [Theory]
    [InlineData("o200k_base")]
    [InlineData("cl100k_base")]
    public async Task RealVocabulary_GatewayAndWorkersHashAlike_PredictedHitIsTheReportedHit(string tokenizer)
    {
        // Gateway:Routing:Tokenizer also sets the embedded (modelled) workers' tokenizer: both sides cut the same ids.
        await using var gw = await TestGateway.StartEmbeddedAsync([(KeyA, "org-a/team/key")], new Dictionary<string, string?>
        {
            ["Gateway:Workers:Embedded:Count"] = "2",
            ["Gateway:Routing:Tokenizer"] = tokenizer,
        });
        var subs = gw.Services.GetRequiredService<KvEventSubscriptions>();
        await WaitUntilAsync(() => subs.Active == 2);
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(KeyA), new OpenAIClientOptions { Endpoint = new Uri(gw.BaseAddress, "v1"), RetryPolicy = new ClientRetryPolicy(0) });
        string prompt = LongPrompt("vocabulary");
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 4 };
        var usage = new List<ChatTokenUsage>();
        for (int i = 0; i < 3; i++)
        {
            ChatCompletion c = await client.CompleteChatAsync([new UserChatMessage(prompt)], options);
            usage.Add(c.Usage);
        }

        // The worker counted the prompt with the real vocabulary (the default tokenizer's count differs).
        var vocabulary = Llm.Prompt.Tokenization.Tokenizers.Create(tokenizer);
        Assert.InRange(usage[0].InputTokenCount, vocabulary.CountTokens(prompt), vocabulary.CountTokens(prompt) + 16); // + the chat template's tokens
        Assert.NotInRange(usage[0].InputTokenCount,
            Llm.Prompt.Tokenization.DefaultTokenizer.Instance.CountTokens(prompt), Llm.Prompt.Tokenization.DefaultTokenizer.Instance.CountTokens(prompt) + 16);
        var recent = gw.Services.GetRequiredService<RecentRegret>().Snapshot().Take(2).ToList();
        Assert.Equal(2, recent.Count);
        // The gateway's block hashes matched the worker's: it predicted the hit the worker then reported.
        Assert.All(recent, e => Assert.True(e.PredictedCachedTokens > 500 && Math.Abs(e.PredictedCachedTokens - e.ActualCachedTokens) <= 64,
            $"predicted {e.PredictedCachedTokens} actual {e.ActualCachedTokens}"));
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
