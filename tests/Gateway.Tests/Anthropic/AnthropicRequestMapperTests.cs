using System.Text;
using System.Text.Json;
using Gateway.Anthropic;
using Llm.Prompt.OpenAi;

namespace Gateway.Tests.Anthropic;

/// <summary>Anthropic Messages request → chat completions request.</summary>
public sealed class AnthropicRequestMapperTests
{
    private static JsonElement Map(string json, bool requireMaxTokens = true)
    {
        Assert.True(AnthropicRequestMapper.TryMap(Encoding.UTF8.GetBytes(json), requireMaxTokens, out var chat, out var error), error?.Message);
        return JsonDocument.Parse(chat).RootElement.Clone();
    }

    private static OpenAiError Fail(string json)
    {
        Assert.False(AnthropicRequestMapper.TryMap(Encoding.UTF8.GetBytes(json), true, out _, out var error));
        return error!;
    }

    [Fact]
    public void SystemString_BecomesTheFirstMessage_AndTheBodyParsesAsAChatCompletion()
    {
        var chat = Map("""{"model":"m","max_tokens":64,"system":"be brief","messages":[{"role":"user","content":"hi"}]}""");
        Assert.Equal("m", chat.GetProperty("model").GetString());
        Assert.Equal(64, chat.GetProperty("max_tokens").GetInt32());
        var messages = chat.GetProperty("messages");
        Assert.Equal("system", messages[0].GetProperty("role").GetString());
        Assert.Equal("be brief", messages[0].GetProperty("content").GetString());
        Assert.Equal("hi", messages[1].GetProperty("content").GetString());
        Assert.True(OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(chat.GetRawText()), OpenAiEndpoint.ChatCompletions, out var parsed, out var error), error?.Message);
        Assert.Equal(2, parsed!.MessageCount);
    }

    [Fact]
    public void SystemBlocksAndMultiBlockUserContent_KeepEveryTextAndDropCacheControl()
    {
        var chat = Map("""
            {"model":"m","max_tokens":8,
             "system":[{"type":"text","text":"one","cache_control":{"type":"ephemeral"}},{"type":"text","text":"two"}],
             "messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAA="}},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}}]}]}
            """);
        var messages = chat.GetProperty("messages");
        Assert.Equal("one\ntwo", messages[0].GetProperty("content").GetString());
        var parts = messages[1].GetProperty("content");
        Assert.Equal(3, parts.GetArrayLength());
        Assert.Equal("a", parts[0].GetProperty("text").GetString());
        Assert.Equal("data:image/png;base64,AAA=", parts[1].GetProperty("image_url").GetProperty("url").GetString());
        Assert.Equal("b", parts[2].GetProperty("text").GetString());
        Assert.DoesNotContain("cache_control", chat.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public void ToolUseAndToolResult_BecomeToolCallsAndToolMessagesInOrder()
    {
        var chat = Map("""
            {"model":"m","max_tokens":8,
             "tools":[{"name":"Read","description":"read a file","input_schema":{"type":"object","properties":{"path":{"type":"string"}}}}],
             "tool_choice":{"type":"any","disable_parallel_tool_use":true},
             "messages":[
               {"role":"user","content":"read it"},
               {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"x"},{"type":"text","text":"Reading."},{"type":"tool_use","id":"toolu_1","name":"Read","input":{"path":"a.txt"}}]},
               {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":[{"type":"text","text":"hello"}]},{"type":"text","text":"now?"}]}]}
            """);
        var m = chat.GetProperty("messages");
        Assert.Equal(4, m.GetArrayLength());
        Assert.Equal("assistant", m[1].GetProperty("role").GetString());
        Assert.Equal("Reading.", m[1].GetProperty("content").GetString());
        var call = m[1].GetProperty("tool_calls")[0];
        Assert.Equal("toolu_1", call.GetProperty("id").GetString());
        Assert.Equal("Read", call.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("a.txt", JsonDocument.Parse(call.GetProperty("function").GetProperty("arguments").GetString()!).RootElement.GetProperty("path").GetString());
        Assert.Equal("tool", m[2].GetProperty("role").GetString());
        Assert.Equal("toolu_1", m[2].GetProperty("tool_call_id").GetString());
        Assert.Equal("hello", m[2].GetProperty("content").GetString());
        Assert.Equal("user", m[3].GetProperty("role").GetString());
        var tool = chat.GetProperty("tools")[0];
        Assert.Equal("function", tool.GetProperty("type").GetString());
        Assert.Equal("Read", tool.GetProperty("function").GetProperty("name").GetString());
        Assert.Equal("object", tool.GetProperty("function").GetProperty("parameters").GetProperty("type").GetString());
        Assert.Equal("required", chat.GetProperty("tool_choice").GetString());
        Assert.False(chat.GetProperty("parallel_tool_calls").GetBoolean());

        Assert.True(OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(chat.GetRawText()), OpenAiEndpoint.ChatCompletions, out var parsed, out _));
        Assert.Equal("user", parsed!.LastRole);
        Assert.Equal(1, parsed.PriorTurns);
    }

    [Fact]
    public void ToolResultAlone_LeavesTheToolMessageLast()
    {
        var chat = Map("""
            {"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"},
             {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
             {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"boom","is_error":true}]}]}
            """);
        var m = chat.GetProperty("messages");
        Assert.Equal(JsonValueKind.Null, m[1].GetProperty("content").ValueKind);
        Assert.Equal("tool", m[m.GetArrayLength() - 1].GetProperty("role").GetString());
        Assert.Equal("Error: boom", m[m.GetArrayLength() - 1].GetProperty("content").GetString());
    }

    [Fact]
    public void StreamStopSequencesSamplingAndUser_AreCarriedOver_AndAStreamAlwaysAsksForUsage()
    {
        var chat = Map("""{"model":"m","max_tokens":8,"stream":true,"temperature":0.5,"top_p":0.9,"top_k":5,"stop_sequences":["END"],"metadata":{"user_id":"u-1"},"messages":[{"role":"user","content":"x"}]}""");
        Assert.True(chat.GetProperty("stream").GetBoolean());
        Assert.True(chat.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
        Assert.Equal(0.5, chat.GetProperty("temperature").GetDouble());
        Assert.Equal(0.9, chat.GetProperty("top_p").GetDouble());
        Assert.Equal("END", chat.GetProperty("stop")[0].GetString());
        Assert.Equal("u-1", chat.GetProperty("user").GetString());
        Assert.False(chat.TryGetProperty("top_k", out _));
    }

    [Theory]
    [InlineData("""{"type":"auto"}""", "\"auto\"")]
    [InlineData("""{"type":"none"}""", "\"none\"")]
    [InlineData("""{"type":"tool","name":"f"}""", """{"type":"function","function":{"name":"f"}}""")]
    public void ToolChoice_MapsToTheChatForm(string choice, string expected)
    {
        var chat = Map($$$"""{"model":"m","max_tokens":8,"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{{{choice}}},"messages":[{"role":"user","content":"x"}]}""");
        Assert.Equal(expected, chat.GetProperty("tool_choice").GetRawText());
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}]}""", "max_tokens")]
    [InlineData("""{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}""", "model")]
    [InlineData("""{"model":"m","max_tokens":1,"messages":[]}""", "messages")]
    [InlineData("""{"model":"m","max_tokens":1,"messages":[{"role":"tool","content":"x"}]}""", "messages.0.role")]
    [InlineData("""{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}""", "max_tokens")]
    [InlineData("""{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"video"}]}]}""", "messages.0.content")]
    [InlineData("""{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}""", "tools.0.type")]
    [InlineData("""{"model":"m","max_tokens":1,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"x"}]}""", "tools.0.input_schema")]
    [InlineData("""{"model":"m","max_tokens":1,"tool_choice":{"type":"any"},"messages":[{"role":"user","content":"x"}]}""", "tool_choice")]
    public void BadRequests_Give400NamingTheField(string json, string field)
    {
        var error = Fail(json);
        Assert.Equal(400, error.Status);
        Assert.Equal(field, error.Param);
        Assert.StartsWith(field, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NotJson_Gives400()
    {
        Assert.Equal(400, Fail("{not json").Status);
        Assert.Equal(400, Fail("[1]").Status);
    }

    [Fact]
    public void CountTokens_DoesNotNeedMaxTokens()
    {
        var chat = Map("""{"model":"m","messages":[{"role":"user","content":"x"}]}""", requireMaxTokens: false);
        Assert.False(chat.TryGetProperty("max_tokens", out _));
    }
}
