using System.ClientModel;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Embeddings;
using OpenAI.Models;

namespace Gateway.Tests.Proxy;

/// <summary>The official OpenAI .NET client pointed at the gateway, unchanged apart from base URL and key.</summary>
public sealed class OpenAiClientTests : IAsyncLifetime
{
    private FakeWorker _w1 = null!;
    private FakeWorker _w2 = null!;
    private Gateway.Hosting.GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _w1 = await FakeWorker.StartAsync();
        _w2 = await FakeWorker.StartAsync();
        _gw = await TestGateway.StartAsync([_w1.Url, _w2.Url]);
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        await _w1.DisposeAsync();
        await _w2.DisposeAsync();
    }

    private OpenAIClientOptions Options => new() { Endpoint = new Uri(_gw.BaseAddress, "v1") };

    [Fact]
    public async Task CompleteChat_OfficialClient_ReturnsWorkerAnswerAndRecordsUsage()
    {
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(TestGateway.DemoKey), Options);
        ChatCompletion result = await client.CompleteChatAsync([new UserChatMessage("hello")]);
        Assert.Equal("Hello from fake", result.Content[0].Text);
        Assert.Equal(10, result.Usage.InputTokenCount);
        Assert.Equal(3, result.Usage.InputTokenDetails.CachedTokenCount);
        var usage = _gw.Usage.Get("demo/default/demo-key");
        Assert.Equal(1, usage.Requests);
        Assert.Equal(10, usage.PromptTokens);
        Assert.Equal(3, usage.CachedTokens);
        Assert.Equal(5, usage.CompletionTokens);
    }

    [Fact]
    public async Task CompleteChatStreaming_OfficialClient_StreamsEveryChunkAndUsage()
    {
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(TestGateway.DemoKey), Options);
        var text = new System.Text.StringBuilder();
        ChatTokenUsage? usage = null;
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("hello")]))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            usage ??= update.Usage;
            finish ??= update.FinishReason;
        }

        Assert.Equal("tok0 tok1 tok2 tok3 tok4 ", text.ToString());
        Assert.Equal(ChatFinishReason.Stop, finish);
        Assert.NotNull(usage);
        Assert.Equal(5, usage!.OutputTokenCount);
        Assert.Equal(5, _gw.Usage.Get("demo/default/demo-key").CompletionTokens);
    }

    [Fact]
    public async Task CompleteChat_WithTools_PassesToolCallsThrough()
    {
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(TestGateway.DemoKey), Options);
        var options = new ChatCompletionOptions();
        options.Tools.Add(ChatTool.CreateFunctionTool("get_weather", "weather", BinaryData.FromString("{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}")));
        ChatCompletion result = await client.CompleteChatAsync([new UserChatMessage("weather?")], options);
        Assert.Equal(ChatFinishReason.ToolCalls, result.FinishReason);
        Assert.Equal("get_weather", Assert.Single(result.ToolCalls).FunctionName);
        // The worker received the tool definitions byte for byte.
        var forwarded = _w1.Requests.Concat(_w2.Requests).Last(r => r.Path == "/v1/chat/completions");
        using var doc = JsonDocument.Parse(forwarded.Body);
        Assert.Equal("get_weather", doc.RootElement.GetProperty("tools")[0].GetProperty("function").GetProperty("name").GetString());
    }

    [Fact]
    public async Task CompleteChatStreaming_WithTools_ToolCallNameSurvives()
    {
        var client = new ChatClient("llama3-8b", new ApiKeyCredential(TestGateway.DemoKey), Options);
        var options = new ChatCompletionOptions();
        options.Tools.Add(ChatTool.CreateFunctionTool("search", "search", BinaryData.FromString("{\"type\":\"object\"}")));
        string? name = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("find")], options))
        {
            foreach (var t in update.ToolCallUpdates)
            {
                name ??= t.FunctionName;
            }
        }

        Assert.Equal("search", name);
    }

    [Fact]
    public async Task GenerateEmbedding_OfficialClient_ReturnsVector()
    {
        var client = new EmbeddingClient("llama3-8b", new ApiKeyCredential(TestGateway.DemoKey), Options);
        OpenAIEmbedding e = await client.GenerateEmbeddingAsync("hello");
        Assert.Equal(3, e.ToFloats().Length);
    }

    [Fact]
    public async Task GetModels_OfficialClient_ListsFleetUnion()
    {
        await using var other = await FakeWorker.StartAsync("qwen-7b");
        await using var gw = await TestGateway.StartAsync([_w1.Url, other.Url]);
        var client = new OpenAIModelClient(new ApiKeyCredential(TestGateway.DemoKey), new OpenAIClientOptions { Endpoint = new Uri(gw.BaseAddress, "v1") });
        // Both workers' models, once each.
        for (int i = 0; i < 100 && gw.Workers.Models.Count < 2; i++)
        {
            await Task.Delay(50);
        }

        OpenAIModelCollection models = await client.GetModelsAsync();
        Assert.Equal(["llama3-8b", "qwen-7b"], models.Select(m => m.Id).Order().ToArray());
    }

    [Fact]
    public async Task Completions_RawHttp_ForwardedAndUsageRecorded()
    {
        using var http = TestGateway.Client(_gw);
        var resp = await http.PostAsync("v1/completions", TestGateway.Json("{\"model\":\"llama3-8b\",\"prompt\":\"Once upon\",\"max_tokens\":5}"));
        Assert.Equal(200, (int)resp.StatusCode);
        using var doc = JsonDocument.Parse(await resp.Content.ReadAsStringAsync());
        Assert.Equal("Hello from fake", doc.RootElement.GetProperty("choices")[0].GetProperty("text").GetString());
    }
}
