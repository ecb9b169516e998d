using Gateway.Configuration;
using Gateway.Proxy.Pipeline;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Proxy.Pipeline;

/// <summary>The body is read once, whole, up to the limit; one byte more is a 413 in OpenAI shape.</summary>
public sealed class RequestBodyReaderTests
{
    private static RequestBodyReader Reader(long limit) =>
        new(Options.Create(new GatewayOptions { Limits = new LimitsOptions { MaxBodyBytes = limit } }));

    private static DefaultHttpContext Request(byte[] body, bool declareLength)
    {
        var context = new DefaultHttpContext();
        context.Request.Body = new MemoryStream(body);
        context.Request.ContentLength = declareLength ? body.Length : null;
        return context;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReadAsync_BodyExactlyAtTheLimit_IsReadWhole(bool declareLength)
    {
        var body = Enumerable.Range(0, 40_000).Select(i => (byte)i).ToArray();

        var (pooled, error) = await Reader(body.Length).ReadAsync(Request(body, declareLength));
        using (pooled)
        {
            Assert.Null(error);
            Assert.Equal(body, pooled.Memory.ToArray());
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task ReadAsync_OneByteOverTheLimit_Is413(bool declareLength)
    {
        var body = new byte[20_001];

        var (pooled, error) = await Reader(20_000).ReadAsync(Request(body, declareLength));

        Assert.Equal(0, pooled.Length);
        Assert.NotNull(error);
        Assert.Equal(413, error.Status);
        Assert.Equal("request_too_large", error.Code);
    }

    [Fact]
    public async Task ReadAsync_EmptyBody_IsAnEmptyBodyNotAnError()
    {
        var (pooled, error) = await Reader(1000).ReadAsync(Request([], declareLength: false));
        using (pooled)
        {
            Assert.Null(error);
            Assert.Equal(0, pooled.Length);
        }
    }

    [Fact]
    public void HardBodyLimit_IsTwiceTheSoftLimit_WithoutOverflow()
    {
        Assert.Equal(2_000, RequestBodyReader.HardBodyLimit(1_000));
        Assert.Equal(long.MaxValue, RequestBodyReader.HardBodyLimit(long.MaxValue / 2 + 1));
    }
}
