using System.Text;
using Llm.Prompt.OpenAi;

namespace Llm.Prompt.Tests.OpenAi;

/// <summary>
/// Valid JSON grammar that is not text (a lone surrogate escape, bytes that are not UTF-8) is a 400 naming the field,
/// for every kind of string, and a body the parser accepts can be read and re-serialised without an exception.
/// </summary>
public class JsonTextCheckTests
{
    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    /// <summary>Builds <c>{"model":"m","messages":[{"role":"user","content":"PREFIX•SUFFIX"}]}</c> with raw bytes in place of •.</summary>
    private static byte[] ChatWithRawBytes(params byte[] raw)
    {
        var head = Utf8("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a");
        var tail = Utf8("b\"}]}");
        return [.. head, .. raw, .. tail];
    }

    public static TheoryData<string, string?> SurrogateEscapes => new()
    {
        // body, expected param
        { """{"model":"\ud800","messages":[{"role":"user","content":"x"}]}""", "model" },
        { """{"model":"m","messages":[{"role":"user","content":"x\udfffy"}]}""", "messages" },
        { """{"model":"m","messages":[{"role":"user","content":"\ud83d"}]}""", "messages" },
        { """{"model":"m","messages":[{"role":"user","content":"\ude00\ud83d"}]}""", "messages" },
        { """{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"k":"\uDBFF"}}""", "metadata" },
        { """{"model":"m","messages":[{"role":"user","content":"x"}],"metadata":{"\ud800":"v"}}""", "metadata" },
        { """{"\ud800":1,"model":"m","messages":[{"role":"user","content":"x"}]}""", null },
        { """{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"\ud800"}]}]}""", "messages" },
        { """{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f\ud800"}}]}""", "tools" },
    };

    [Theory]
    [MemberData(nameof(SurrogateEscapes))]
    public void LoneSurrogateEscape_Is400InvalidJson_NamingTheTopLevelField(string json, string? param)
    {
        Assert.False(OpenAiRequestParser.TryParse(Utf8(json), OpenAiEndpoint.ChatCompletions, out var r, out var e));
        Assert.Null(r);
        Assert.Equal(400, e!.Status);
        Assert.Equal("invalid_json", e.Code);
        Assert.Equal(param, e.Param);
        Assert.Contains("surrogate", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xC0, 0x80 })] // overlong NUL
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })] // UTF-8-encoded surrogate
    [InlineData(new byte[] { 0xE2, 0x82 })] // truncated sequence
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })] // above U+10FFFF
    public void InvalidUtf8InAString_Is400InvalidJson(byte[] raw)
    {
        Assert.False(OpenAiRequestParser.TryParse(ChatWithRawBytes(raw), OpenAiEndpoint.ChatCompletions, out _, out var e));
        Assert.Equal(400, e!.Status);
        Assert.Equal("invalid_json", e.Code);
        Assert.Equal("messages", e.Param);
        Assert.Contains("not UTF-8", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"\ud83d\ude00 \u00e9 \u0000 \\ud800"}]}""")] // pair, BMP, NUL, escaped backslash
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"😀 é 中文"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"\uD83D\uDE00"}],"metadata":{"\ud83d\ude00":"\udbff\udfff"}}""")]
    public void ValidText_IsAccepted_WhateverItsEscapes(string json)
    {
        Assert.True(OpenAiRequestParser.TryParse(Utf8(json), OpenAiEndpoint.ChatCompletions, out var r, out var e), e?.Message);
        Assert.NotNull(r!.PromptText);
    }

    [Theory]
    [InlineData("""{"prompt":"\ud800","model":"m"}""", OpenAiEndpoint.Completions, "prompt")]
    [InlineData("""{"model":"m","input":["ok","\udc00"]}""", OpenAiEndpoint.Embeddings, "input")]
    public void EveryEndpoint_ChecksItsBody(string json, OpenAiEndpoint endpoint, string param)
    {
        Assert.False(OpenAiRequestParser.TryParse(Utf8(json), endpoint, out _, out var e));
        Assert.Equal(param, e!.Param);
    }

    [Theory]
    [InlineData("""{"model":"m","model":"other","messages":[{"role":"user","content":"x"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x","role":"system"}]}""")]
    [InlineData("""{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true,"include_usage":false}}""")]
    public void DuplicateKeys_Are400InvalidJson_AtAnyDepth(string json)
    {
        // Two readers of one body (gateway, worker, the body rewriter) must never disagree on which value counts.
        Assert.False(OpenAiRequestParser.TryParse(Utf8(json), OpenAiEndpoint.ChatCompletions, out _, out var e));
        Assert.Equal(400, e!.Status);
        Assert.Equal("invalid_json", e.Code);
        Assert.Contains("Duplicate", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("abc", false)]
    [InlineData("\\u00e9", false)]
    [InlineData("\\ud800", true)]
    [InlineData("\\uDFFF", true)]
    [InlineData("\\ud7ff\\ue000", false)]
    [InlineData("\\u", false)]
    [InlineData("x\\ud", false)]
    public void HasSurrogateEscape_FindsOnlyD800ToDfff(string text, bool expected) =>
        Assert.Equal(expected, JsonTextCheck.HasSurrogateEscape(Utf8(text)));
}
