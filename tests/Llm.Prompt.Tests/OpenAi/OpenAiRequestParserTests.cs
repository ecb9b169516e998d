using System.Text;
using Llm.Prompt.OpenAi;

namespace Llm.Prompt.Tests.OpenAi;

public class OpenAiRequestParserTests
{
    private static (OpenAiRequest? Req, OpenAiError? Err) Parse(string json, OpenAiEndpoint ep = OpenAiEndpoint.ChatCompletions)
    {
        OpenAiRequestParser.TryParse(Encoding.UTF8.GetBytes(json), ep, out var r, out var e);
        return (r, e);
    }

    [Fact]
    public void Chat_ParsesFieldsAndRendersPrompt()
    {
        var (r, e) = Parse("""
            {"model":"m","stream":true,"stream_options":{"include_usage":true},"max_tokens":12,"user":"u1",
             "tools":[{"type":"function","function":{"name":"read_file","parameters":{}}}],
             "messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}
            """);
        Assert.Null(e);
        Assert.Equal("m", r!.Model);
        Assert.True(r.Stream);
        Assert.True(r.IncludeUsage);
        Assert.Equal(12, r.MaxTokens);
        Assert.Equal(["read_file"], r.ToolNames);
        Assert.Equal("u1", r.User);
        Assert.Contains("<|system|>\nbe brief\n<|user|>\nhi\n<|assistant|>\n", r.PromptText);
        Assert.StartsWith("<|tools|>", r.PromptText);
    }

    [Fact]
    public void Chat_AppendingMessagesExtendsThePrompt()
    {
        var (a, _) = Parse("""{"model":"m","messages":[{"role":"user","content":"one"}]}""");
        var (b, _) = Parse("""{"model":"m","messages":[{"role":"user","content":"one"},{"role":"assistant","content":"two"},{"role":"user","content":"three"}]}""");
        string prefix = a!.PromptText[..^"<|assistant|>\n".Length];
        Assert.StartsWith(prefix, b!.PromptText);
    }

    [Fact]
    public void Chat_PriorTurns_CountsTheAssistantMessages_AndIsUnknownForCompletions()
    {
        var (first, _) = Parse("""{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"go"}]}""");
        var (third, _) = Parse("""
            {"model":"m","messages":[{"role":"user","content":"go"},
             {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"bash","arguments":"{}"}}]},
             {"role":"tool","tool_call_id":"c1","content":"ok"},{"role":"assistant","content":"done"},{"role":"user","content":"next"}]}
            """);
        var (completion, _) = Parse("""{"model":"m","prompt":"hi"}""", OpenAiEndpoint.Completions);
        Assert.Equal(0, first!.PriorTurns);
        Assert.Equal(2, third!.PriorTurns);
        Assert.Equal(-1, completion!.PriorTurns);
    }

    [Theory]
    [InlineData("{not json", null, "invalid_json")]
    [InlineData("[]", null, null)]
    [InlineData("""{"messages":[]}""", "model", "missing_required_parameter")]
    [InlineData("""{"model":5,"messages":[]}""", "model", null)]
    [InlineData("""{"model":"m"}""", "messages", "missing_required_parameter")]
    [InlineData("""{"model":"m","messages":"hi"}""", "messages", null)]
    [InlineData("""{"model":"m","messages":[]}""", "messages", null)]
    [InlineData("""{"model":"m","messages":[{"content":"x"}]}""", "messages[0].role", null)]
    [InlineData("""{"model":"m","messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role", null)]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":5}]}""", "messages[0].content", null)]
    [InlineData("""{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}""", "max_tokens", null)]
    [InlineData("""{"model":"m","max_tokens":"10","messages":[{"role":"user","content":"x"}]}""", "max_tokens", null)]
    [InlineData("""{"model":"m","max_tokens":99999999999,"messages":[{"role":"user","content":"x"}]}""", "max_tokens", null)]
    [InlineData("""{"model":"m","stream":"yes","messages":[{"role":"user","content":"x"}]}""", "stream", null)]
    [InlineData("""{"model":"m","n":0,"messages":[{"role":"user","content":"x"}]}""", "n", null)]
    [InlineData("""{"model":"m","stop":[1],"messages":[{"role":"user","content":"x"}]}""", "stop", null)]
    [InlineData("""{"model":"m","tools":[{"type":"function"}],"messages":[{"role":"user","content":"x"}]}""", "tools[0]", null)]
    public void Chat_BadInput_IsA400NamingTheParameter(string json, string? param, string? code)
    {
        var (r, e) = Parse(json);
        Assert.Null(r);
        Assert.NotNull(e);
        Assert.Equal(400, e!.Status);
        Assert.Equal("invalid_request_error", e.Type);
        Assert.Equal(param, e.Param);
        if (code is not null)
        {
            Assert.Equal(code, e.Code);
        }
    }

    [Fact]
    public void DeeplyNestedJson_IsRejected()
    {
        string deep = "{\"model\":\"m\",\"x\":" + new string('[', 200) + new string(']', 200) + ",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
        var (_, e) = Parse(deep);
        Assert.Equal("invalid_json", e!.Code);
    }

    [Fact]
    public void Completions_And_Embeddings()
    {
        var (c, _) = Parse("""{"model":"m","prompt":"Once upon"}""", OpenAiEndpoint.Completions);
        Assert.Equal("Once upon", c!.PromptText);
        var (e, _) = Parse("""{"model":"m","input":["a","b"]}""", OpenAiEndpoint.Embeddings);
        Assert.Equal(["a", "b"], e!.EmbeddingInputs);
        var (_, err) = Parse("""{"model":"m","input":[1]}""", OpenAiEndpoint.Embeddings);
        Assert.Equal("input", err!.Param);
    }

    [Fact]
    public void Error_SerialisesInOpenAiShape()
    {
        var json = Encoding.UTF8.GetString(OpenAiError.Invalid("bad", "model", "x").ToJsonBytes());
        Assert.Equal("""{"error":{"message":"bad","type":"invalid_request_error","param":"model","code":"x"}}""", json);
    }
}
