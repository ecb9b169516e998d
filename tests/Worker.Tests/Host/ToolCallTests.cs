using System.Text;
using System.Text.Json;
using OpenAI.Chat;
using Worker.Generation;

namespace Worker.Tests.Host;

public sealed class ToolCallTests : IAsyncLifetime
{
    private static readonly ChatTool Weather = ChatTool.CreateFunctionTool(
        "get_weather",
        "Current weather for a city",
        BinaryData.FromString("""
            {"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer"}},"required":["location"]}
            """));

    private static readonly ChatTool Search = ChatTool.CreateFunctionTool(
        "search_docs",
        "Search the documentation",
        BinaryData.FromString("""{"type":"object","properties":{"query":{"type":"string"},"exact":{"type":"boolean"}}}"""));

    private WorkerHost _host = null!;
    private ChatClient _chat = null!;

    public async Task InitializeAsync()
    {
        _host = await TestWorkers.StartAsync();
        _chat = TestWorkers.Client(_host).GetChatClient(TestWorkers.Model);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private static ChatCompletionOptions WithTools(ChatToolChoice? choice = null)
    {
        var o = new ChatCompletionOptions { ToolChoice = choice };
        o.Tools.Add(Weather);
        o.Tools.Add(Search);
        return o;
    }

    [Fact]
    public async Task UserTurnWithTools_ReturnsToolCall_WithSchemaShapedArguments()
    {
        ChatCompletion c = await _chat.CompleteChatAsync([new UserChatMessage("What's the weather in Paris?")], WithTools());

        Assert.Equal(ChatFinishReason.ToolCalls, c.FinishReason);
        var call = Assert.Single(c.ToolCalls);
        Assert.StartsWith("call_", call.Id, StringComparison.Ordinal);
        Assert.Contains(call.FunctionName, new[] { "get_weather", "search_docs" });
        using var args = JsonDocument.Parse(call.FunctionArguments.ToString());
        if (call.FunctionName == "get_weather")
        {
            Assert.Equal(JsonValueKind.String, args.RootElement.GetProperty("location").ValueKind);
            Assert.Contains(args.RootElement.GetProperty("unit").GetString(), new[] { "celsius", "fahrenheit" });
            Assert.Equal(JsonValueKind.Number, args.RootElement.GetProperty("days").ValueKind);
        }
        else
        {
            Assert.Equal(JsonValueKind.String, args.RootElement.GetProperty("query").ValueKind);
            Assert.True(args.RootElement.GetProperty("exact").ValueKind is JsonValueKind.True or JsonValueKind.False);
        }

        Assert.True(c.Usage.OutputTokenCount > 1);
    }

    [Fact]
    public async Task AgentLoop_ToolResultsFedBack_AlternatesAndEndsInText()
    {
        var messages = new List<ChatMessage> { new UserChatMessage("Plan a trip and check the weather.") };
        int toolCalls = 0;
        ChatCompletion? last = null;
        for (int turn = 0; turn < ToolCallRule.MaxToolResults + 2; turn++)
        {
            last = await _chat.CompleteChatAsync(messages, WithTools());
            if (last.FinishReason != ChatFinishReason.ToolCalls)
            {
                break;
            }

            toolCalls++;
            messages.Add(new AssistantChatMessage(last));
            foreach (var call in last.ToolCalls)
            {
                messages.Add(new ToolChatMessage(call.Id, $"{{\"result\":\"ok {turn}\"}}"));
            }
        }

        Assert.NotNull(last);
        Assert.Equal(ChatFinishReason.Stop, last!.FinishReason);
        Assert.False(string.IsNullOrEmpty(last.Content[0].Text));
        Assert.InRange(toolCalls, 1, ToolCallRule.MaxToolResults);
    }

    [Fact]
    public async Task ToolChoice_NoneGivesText_RequiredAndNamedGiveCalls()
    {
        var afterTool = new List<ChatMessage>
        {
            new UserChatMessage("Look it up."),
            new AssistantChatMessage([ChatToolCall.CreateFunctionToolCall("call_1", "search_docs", BinaryData.FromString("{}"))]),
            new ToolChatMessage("call_1", "nothing found"),
        };

        ChatCompletion none = await _chat.CompleteChatAsync([new UserChatMessage("hi")], WithTools(ChatToolChoice.CreateNoneChoice()));
        Assert.NotEqual(ChatFinishReason.ToolCalls, none.FinishReason);
        Assert.Empty(none.ToolCalls);

        for (int i = 0; i < 5; i++)
        {
            afterTool[2] = new ToolChatMessage("call_1", $"result variant {i}");
            ChatCompletion required = await _chat.CompleteChatAsync(afterTool, WithTools(ChatToolChoice.CreateRequiredChoice()));
            Assert.Equal(ChatFinishReason.ToolCalls, required.FinishReason);
        }

        ChatCompletion named = await _chat.CompleteChatAsync([new UserChatMessage("hi")], WithTools(ChatToolChoice.CreateFunctionChoice("search_docs")));
        Assert.Equal("search_docs", Assert.Single(named.ToolCalls).FunctionName);
    }

    [Fact]
    public async Task StreamingToolCall_DeltasAssembleToTheNonStreamingCall()
    {
        var msgs = new ChatMessage[] { new UserChatMessage("Search the docs for retention pins.") };
        ChatCompletion whole = await _chat.CompleteChatAsync(msgs, WithTools());
        var expected = Assert.Single(whole.ToolCalls);

        string? id = null;
        string? name = null;
        var args = new StringBuilder();
        ChatFinishReason? finish = null;
        int argumentUpdates = 0;
        await foreach (var u in _chat.CompleteChatStreamingAsync(msgs, WithTools()))
        {
            foreach (var t in u.ToolCallUpdates)
            {
                Assert.Equal(0, t.Index);
                id ??= t.ToolCallId;
                name ??= t.FunctionName;
                if (t.FunctionArgumentsUpdate is { } a && !a.ToMemory().IsEmpty)
                {
                    args.Append(a.ToString());
                    argumentUpdates++;
                }
            }

            finish ??= u.FinishReason;
        }

        Assert.Equal(expected.Id, id);
        Assert.Equal(expected.FunctionName, name);
        Assert.Equal(expected.FunctionArguments.ToString(), args.ToString());
        Assert.True(argumentUpdates > 1, "arguments arrive in several chunks");
        Assert.Equal(ChatFinishReason.ToolCalls, finish);
    }

    [Fact]
    public async Task UnknownNamedToolChoice_Returns400()
    {
        using var http = TestWorkers.Http(_host);
        string body = """
            {"model":"llama3-8b","messages":[{"role":"user","content":"x"}],
             "tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}
            """;
        var (status, json) = await TestWorkers.PostJsonAsync(http, "/v1/chat/completions", body);
        Assert.Equal(400, status);
        Assert.Equal("tool_choice", json.GetProperty("error").GetProperty("param").GetString());
    }
}
