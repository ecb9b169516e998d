using System.Text;
using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Core.Routing;
using Gateway.Proxy;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Proxy;

/// <summary>A non-streaming answer is buffered whole (bounded) before anything reaches the client, and read for usage.</summary>
public sealed class GatewayTransformerTests
{
    private static GatewayRequestContext Ctx() => new()
    {
        RequestId = 1,
        Tenant = new Tenant("a/b/c", 1, [], 0, 0, "salt"),
        Request = new OpenAiRequest { Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", Stream = false },
        Route = new RouteRequest { TenantPath = "a/b/c", BlockHashes = [], PromptTokens = 1 },
        ForwardBody = Array.Empty<byte>(),
    };

    private static string Answer(int padding) =>
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"" + new string('a', padding)
        + "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":4}}}";

    private static HttpResponseMessage Response(byte[] body, bool declareLength)
    {
        var content = new StreamContent(declareLength ? new MemoryStream(body) : new UnseekableStream(body));
        content.Headers.ContentType = new("application/json");
        return new HttpResponseMessage(System.Net.HttpStatusCode.OK) { Content = content };
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TransformResponse_AnswerLargerThanTheFirstBuffer_IsRelayedByteForByteAndItsUsageRead(bool declareLength)
    {
        var body = Encoding.UTF8.GetBytes(Answer(50_000));
        var ctx = Ctx();
        using var firstByte = new CancellationTokenSource();
        var transformer = new GatewayTransformer(ctx, firstByte, new ProxySettings(TimeSpan.FromSeconds(5), 65_536, 1 << 20));
        using var response = Response(body, declareLength);

        Assert.True(await transformer.TransformResponseAsync(new DefaultHttpContext(), response, CancellationToken.None));
        var relayed = await response.Content.ReadAsByteArrayAsync();
        transformer.ReleaseBufferedAnswer();

        Assert.Equal(body, relayed);
        Assert.True(ctx.FirstEventSeen);
        Assert.True(ctx.UsageSeen);
        Assert.Equal(4, ctx.CachedTokens);
        Assert.Equal("stop", ctx.FinishReason);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task TransformResponse_AnswerOverMaxResponseBytes_FailsBeforeTheFirstByte(bool declareLength)
    {
        var body = Encoding.UTF8.GetBytes(Answer(5_000));
        using var firstByte = new CancellationTokenSource();
        var transformer = new GatewayTransformer(Ctx(), firstByte, new ProxySettings(TimeSpan.FromSeconds(5), 65_536, 4_096));
        using var response = Response(body, declareLength);

        await Assert.ThrowsAsync<IOException>(() => transformer.TransformResponseAsync(new DefaultHttpContext(), response, CancellationToken.None).AsTask());

        Assert.True(transformer.FailedBeforeFirstByte);
    }

    /// <summary>A body whose length is unknown until it ends (as a chunked answer).</summary>
    private sealed class UnseekableStream(byte[] body) : MemoryStream(body)
    {
        public override bool CanSeek => false;
    }
}
