using Gateway.Configuration;
using Gateway.Proxy;
using Gateway.Proxy.Pipeline;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Proxy.Pipeline;

/// <summary>What a client reads when no attempt delivered an answer: status, code and Retry-After per outcome.</summary>
public sealed class FailureAnswerTests
{
    private static readonly FailureAnswer Answers = new(
        Options.Create(new GatewayOptions { Resilience = new ResilienceOptions { RetryAfterSeconds = 7 } }),
        NullLogger<FailureAnswer>.Instance);

    [Theory]
    [InlineData(AttemptKind.NoWorker, 503, "no_healthy_worker", 7)]
    [InlineData(AttemptKind.CircuitOpen, 503, "no_healthy_worker", 7)]
    [InlineData(AttemptKind.Draining, 503, "no_healthy_worker", 7)]
    [InlineData(AttemptKind.Throttled, 429, "workers_overloaded", 7)]
    [InlineData(AttemptKind.FirstByteTimeout, 504, "upstream_timeout", null)]
    [InlineData(AttemptKind.ServerError, 502, "upstream_error", null)]
    [InlineData(AttemptKind.ConnectFailed, 502, "upstream_error", null)]
    [InlineData(AttemptKind.DiedBeforeFirstByte, 502, "upstream_error", null)]
    public void For_EachFailedOutcome_HasItsStatusCodeAndRetryAfter(AttemptKind kind, int status, string code, int? retryAfter)
    {
        var (error, seconds) = Answers.For(new AttemptOutcome(kind, 500), "m");

        Assert.Equal(status, error.Status);
        Assert.Equal(code, error.Code);
        Assert.Equal(retryAfter, seconds);
    }

    [Fact]
    public void For_WorkerSentRetryAfter_IsPassedOnRoundedUp()
    {
        var (_, seconds) = Answers.For(new AttemptOutcome(AttemptKind.Throttled, 429, RetryAfter: TimeSpan.FromSeconds(2.2)), "m");

        Assert.Equal(3, seconds);
    }

    [Fact]
    public void For_ServerError_NamesTheWorkersStatus()
    {
        var (error, _) = Answers.For(new AttemptOutcome(AttemptKind.ServerError, 503), "m");

        Assert.Contains("status 503", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(AttemptKind.Delivered)]
    [InlineData(AttemptKind.ClientAborted)]
    [InlineData(AttemptKind.DiedMidStream)]
    public async Task WriteAsync_OutcomeThatAnsweredOrLostTheClient_WritesNothing(AttemptKind kind)
    {
        var context = new DefaultHttpContext();
        context.Response.Body = new MemoryStream();

        await Answers.WriteAsync(context, new AttemptOutcome(kind), "m");

        Assert.Equal(200, context.Response.StatusCode);
        Assert.Equal(0, context.Response.Body.Length);
    }

    [Fact]
    public async Task WriteAsync_NoWorker_Writes503InOpenAiShapeWithRetryAfter()
    {
        var context = new DefaultHttpContext();
        context.Response.Body = new MemoryStream();

        await Answers.WriteAsync(context, new AttemptOutcome(AttemptKind.NoWorker), "llama");

        Assert.Equal(503, context.Response.StatusCode);
        Assert.Equal("7", context.Response.Headers.RetryAfter.ToString());
        string body = System.Text.Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());
        Assert.Contains("\"code\":\"no_healthy_worker\"", body, StringComparison.Ordinal);
        Assert.Contains("llama", body, StringComparison.Ordinal);
    }
}
