using System.Buffers;
using System.Text;
using System.Text.Json;
using Gateway.Anthropic;

namespace Gateway.Tests.Anthropic;

/// <summary>Chat completions answer → Anthropic Messages answer, whole and streamed.</summary>
public sealed class AnthropicResponseTranslatorTests
{
    private static JsonElement Body(string chatJson)
    {
        var t = new AnthropicResponseTranslator("claude-x");
        return JsonDocument.Parse(t.TranslateBody(Encoding.UTF8.GetBytes(chatJson))).RootElement.Clone();
    }

    [Fact]
    public void TextAnswer_BecomesAMessageWithUsageSplitIntoCachedAndUncached()
    {
        var m = Body("""{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":64}}}""");
        Assert.Equal("message", m.GetProperty("type").GetString());
        Assert.Equal("msg_c1", m.GetProperty("id").GetString());
        Assert.Equal("claude-x", m.GetProperty("model").GetString());
        Assert.Equal("assistant", m.GetProperty("role").GetString());
        Assert.Equal("text", m.GetProperty("content")[0].GetProperty("type").GetString());
        Assert.Equal("Hi there", m.GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal("end_turn", m.GetProperty("stop_reason").GetString());
        var u = m.GetProperty("usage");
        Assert.Equal(36, u.GetProperty("input_tokens").GetInt32());
        Assert.Equal(64, u.GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(7, u.GetProperty("output_tokens").GetInt32());
    }

    [Fact]
    public void ToolCalls_BecomeToolUseBlocksWithParsedInput()
    {
        var m = Body("""{"id":"c2","choices":[{"index":0,"message":{"role":"assistant","content":"Let me look.","tool_calls":[{"id":"call_9","type":"function","function":{"name":"Read","arguments":"{\"path\":\"a.txt\"}"}}]},"finish_reason":"tool_calls"}]}""");
        var content = m.GetProperty("content");
        Assert.Equal(2, content.GetArrayLength());
        Assert.Equal("tool_use", content[1].GetProperty("type").GetString());
        Assert.Equal("call_9", content[1].GetProperty("id").GetString());
        Assert.Equal("Read", content[1].GetProperty("name").GetString());
        Assert.Equal("a.txt", content[1].GetProperty("input").GetProperty("path").GetString());
        Assert.Equal("tool_use", m.GetProperty("stop_reason").GetString());
    }

    [Theory]
    [InlineData("length", "max_tokens")]
    [InlineData("content_filter", "refusal")]
    [InlineData("stop", "end_turn")]
    public void FinishReasons_MapToStopReasons(string finish, string stop)
    {
        var m = Body($$"""{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"x"},"finish_reason":"{{finish}}"}]}""");
        Assert.Equal(stop, m.GetProperty("stop_reason").GetString());
    }

    [Theory]
    [InlineData(400, "invalid_request_error")]
    [InlineData(401, "authentication_error")]
    [InlineData(403, "permission_error")]
    [InlineData(404, "not_found_error")]
    [InlineData(413, "request_too_large")]
    [InlineData(429, "rate_limit_error")]
    [InlineData(502, "api_error")]
    [InlineData(503, "overloaded_error")]
    public void OpenAiErrors_BecomeAnthropicErrorsOfTheStatus(int status, string type)
    {
        var t = new AnthropicResponseTranslator("m");
        var e = JsonDocument.Parse(t.TranslateError(status, """{"error":{"message":"nope","type":"x","param":null,"code":null}}"""u8)).RootElement;
        Assert.Equal("error", e.GetProperty("type").GetString());
        Assert.Equal(type, e.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("nope", e.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public void Stream_TranslatesEachChunkAsItComes_TextThenToolUse_ThenStopWithUsage()
    {
        var t = new AnthropicResponseTranslator("claude-x", () => 42);
        var events = new List<(string Name, JsonElement Data)>();
        void Feed(string chunk)
        {
            var output = new ArrayBufferWriter<byte>();
            t.OnChunk(Encoding.UTF8.GetBytes(chunk), output);
            events.AddRange(Parse(output));
        }

        Feed("""{"id":"c3","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}""");
        Assert.Equal(["message_start", "content_block_start", "content_block_delta"], events.Select(e => e.Name));
        Assert.Equal(42, events[0].Data.GetProperty("message").GetProperty("usage").GetProperty("input_tokens").GetInt32());
        Feed("""{"id":"c3","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}""");
        Feed("""{"id":"c3","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"Grep","arguments":""}}]},"finish_reason":null}]}""");
        Feed("""{"id":"c3","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"q\":"}}]},"finish_reason":null}]}""");
        Feed("""{"id":"c3","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"x\"}"}}]},"finish_reason":"tool_calls"}]}""");
        Feed("""{"id":"c3","choices":[],"usage":{"prompt_tokens":50,"completion_tokens":9,"prompt_tokens_details":{"cached_tokens":32}}}""");
        var end = new ArrayBufferWriter<byte>();
        t.OnEnd(end);
        events.AddRange(Parse(end));

        Assert.Equal(
            ["message_start", "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
             "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Name));
        Assert.Equal("Hello", string.Concat(events.Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("index").GetInt32() == 0)
            .Select(e => e.Data.GetProperty("delta").GetProperty("text").GetString())));
        var toolStart = events[5].Data;
        Assert.Equal(1, toolStart.GetProperty("index").GetInt32());
        Assert.Equal("tool_use", toolStart.GetProperty("content_block").GetProperty("type").GetString());
        Assert.Equal("Grep", toolStart.GetProperty("content_block").GetProperty("name").GetString());
        string json = string.Concat(events.Where(e => e.Name == "content_block_delta" && e.Data.GetProperty("index").GetInt32() == 1)
            .Select(e => e.Data.GetProperty("delta").GetProperty("partial_json").GetString()));
        Assert.Equal("""{"q":"x"}""", json);
        var delta = events[9].Data;
        Assert.Equal("tool_use", delta.GetProperty("delta").GetProperty("stop_reason").GetString());
        Assert.Equal(9, delta.GetProperty("usage").GetProperty("output_tokens").GetInt32());
        Assert.Equal(32, delta.GetProperty("usage").GetProperty("cache_read_input_tokens").GetInt32());
        Assert.Equal(18, delta.GetProperty("usage").GetProperty("input_tokens").GetInt32());
    }

    [Fact]
    public void StreamErrorEvent_BecomesAnAnthropicErrorEvent_AndNothingFollows()
    {
        var t = new AnthropicResponseTranslator("m");
        var output = new ArrayBufferWriter<byte>();
        t.OnChunk("""{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}"""u8, output);
        t.OnChunk("""{"error":{"message":"The connection to the worker was lost mid-stream.","type":"server_error"}}"""u8, output);
        t.OnEnd(output);
        var events = Parse(output);
        Assert.Equal("error", events[^1].Name);
        Assert.Equal("api_error", events[^1].Data.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(events, e => e.Name == "message_stop");
    }

    internal static List<(string Name, JsonElement Data)> Parse(ArrayBufferWriter<byte> output) => Parse(Encoding.UTF8.GetString(output.WrittenSpan));

    internal static List<(string Name, JsonElement Data)> Parse(string sse)
    {
        var list = new List<(string, JsonElement)>();
        foreach (var block in sse.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? name = null;
            string? data = null;
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data = line[6..];
                }
            }

            Assert.NotNull(name);
            var d = JsonDocument.Parse(data!).RootElement.Clone();
            Assert.Equal(name, d.GetProperty("type").GetString());
            list.Add((name!, d));
        }

        return list;
    }
}
