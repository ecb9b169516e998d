using System.Text.Json;
using Anthropic;
using Anthropic.Models.Messages;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Anthropic;

/// <summary>Anthropic's official .NET client (NuGet <c>Anthropic</c>) pointed at the gateway with the demo key.</summary>
public sealed class AnthropicClientTests : OneFakeWorkerGateway
{
    private AnthropicClient Client() => new() { ApiKey = TestGateway.DemoKey, BaseUrl = Host.BaseAddress.ToString().TrimEnd('/'), MaxRetries = 0 };

    private static Tool LookupTool() => new()
    {
        Name = "lookup",
        Description = "look something up",
        InputSchema = InputSchema.FromRawUnchecked(new Dictionary<string, JsonElement>
        {
            ["type"] = JsonSerializer.SerializeToElement("object"),
            ["properties"] = JsonSerializer.SerializeToElement(new { q = new { type = "string" } }),
        }),
    };

    [Fact]
    public async Task Create_ReturnsTheWorkersTextWithUsage()
    {
        var message = await Client().Messages.Create(new MessageCreateParams
        {
            MaxTokens = 64,
            Model = "llama3-8b",
            Messages = [new UserMessageParam("hello")],
        });
        Assert.True(message.Content[0].TryPickText(out var text));
        Assert.Equal("Hello from fake", text!.Text);
        Assert.Equal(3, message.Usage.CacheReadInputTokens);
        Assert.Equal(7, message.Usage.InputTokens);
        Assert.Equal(5, message.Usage.OutputTokens);
    }

    [Fact]
    public async Task Create_WithTools_ReturnsAToolUseBlock()
    {
        var message = await Client().Messages.Create(new MessageCreateParams
        {
            MaxTokens = 64,
            Model = "llama3-8b",
            Messages = [new UserMessageParam("look it up")],
            Tools = [LookupTool()],
        });
        Assert.True(message.Content[0].TryPickToolUse(out var use));
        Assert.Equal("lookup", use!.Name);
        Assert.Equal("x", use.Input["q"].GetString());
        Assert.True(message.StopReason == StopReason.ToolUse, message.StopReason?.ToString());
    }

    [Fact]
    public async Task CreateStreaming_WithTools_StreamsToolInputAndTextDeltasAndUsage()
    {
        var json = new System.Text.StringBuilder();
        var text = new System.Text.StringBuilder();
        string? toolName = null;
        long? outputTokens = null;
        int starts = 0, stops = 0;
        await foreach (var e in Client().Messages.CreateStreaming(new MessageCreateParams
        {
            MaxTokens = 64,
            Model = "llama3-8b",
            Messages = [new UserMessageParam("look it up")],
            Tools = [LookupTool()],
        }))
        {
            if (e.TryPickContentBlockStart(out var start))
            {
                starts++;
                if (start!.ContentBlock.TryPickToolUse(out var tu))
                {
                    toolName = tu!.Name;
                }
            }
            else if (e.TryPickContentBlockDelta(out var delta))
            {
                if (delta!.Delta.TryPickInputJson(out var ij))
                {
                    json.Append(ij!.PartialJson);
                }
                else if (delta.Delta.TryPickText(out var td))
                {
                    text.Append(td!.Text);
                }
            }
            else if (e.TryPickContentBlockStop(out _))
            {
                stops++;
            }
            else if (e.TryPickDelta(out var md))
            {
                outputTokens = md!.Usage.OutputTokens;
            }
        }

        Assert.Equal("lookup", toolName);
        Assert.Equal("tok1 tok2 tok3 tok4 ", text.ToString()); // the fake worker's text after its tool call
        Assert.Equal(starts, stops);
        Assert.Equal(5, outputTokens);
    }

    [Fact]
    public async Task CountTokens_AnswersWithAPositiveCount()
    {
        var count = await Client().Messages.CountTokens(new MessageCountTokensParams
        {
            Model = "llama3-8b",
            Messages = [new UserMessageParam("hello there")],
        });
        Assert.True(count.InputTokens > 0);
    }

    [Fact]
    public async Task WrongKey_ThrowsTheClientsAuthenticationError()
    {
        var client = new AnthropicClient { ApiKey = "sk-wrong", BaseUrl = Host.BaseAddress.ToString().TrimEnd('/'), MaxRetries = 0 };
        await Assert.ThrowsAsync<global::Anthropic.Exceptions.AnthropicUnauthorizedException>(() => client.Messages.Create(new MessageCreateParams
        {
            MaxTokens = 8,
            Model = "llama3-8b",
            Messages = [new UserMessageParam("x")],
        }));
    }
}
