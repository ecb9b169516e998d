using System.Diagnostics;
using Gateway.Telemetry;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// The gateway tags a span only when someone can read the tags: a recorded span, or one from a source something listens
/// to. The server span ASP.NET Core creates with tracing off (for log correlation and propagation) asks for all data but
/// has no listener: it is left untagged.
/// </summary>
public sealed class SpanTaggingTests
{
    [Fact]
    public void SpanWithoutListener_NotTagged_EvenThoughItAsksForAllData()
    {
        using var span = new Activity("Microsoft.AspNetCore.Hosting.HttpRequestIn").Start();
        Assert.True(span.IsAllDataRequested);

        GatewayTracing.TagRequest(span, "acme/search", "llama3-8b", "header");
        GatewayTracing.TagRouting(span, "worker-1", "kv-aware", 64);

        Assert.False(GatewayTracing.Tagged(span));
        Assert.Empty(span.TagObjects);
    }

    [Theory]
    [InlineData(ActivitySamplingResult.AllDataAndRecorded)]
    [InlineData(ActivitySamplingResult.AllData)]
    public void SpanOfAListenedSource_Tagged(ActivitySamplingResult sampling)
    {
        using var source = new ActivitySource("gateway.tests.tagging." + sampling);
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => ReferenceEquals(s, source),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => sampling,
        };
        ActivitySource.AddActivityListener(listener);
        using var span = source.StartActivity("request");

        GatewayTracing.TagRequest(span, "acme/search", "llama3-8b", "header");

        Assert.True(GatewayTracing.Tagged(span));
        Assert.Equal("acme/search", span!.GetTagItem(GatewayTracing.Tags.Tenant));
        Assert.Equal("llama3-8b", span.GetTagItem(GatewayTracing.Tags.Model));
    }

    [Fact]
    public void PropagationOnlySpan_NotTagged()
    {
        using var source = new ActivitySource("gateway.tests.tagging.propagation");
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => ReferenceEquals(s, source),
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.PropagationData,
        };
        ActivitySource.AddActivityListener(listener);
        using var span = source.StartActivity("request");

        GatewayTracing.TagRequest(span, "acme/search", "llama3-8b", "header");

        Assert.NotNull(span);
        Assert.Empty(span.TagObjects);
    }
}
