using System.Text;
using System.Text.Json;
using Gateway.Proxy;

namespace Gateway.Tests.Proxy;

/// <summary>The gateway's body edits: everything it does not edit comes through as the client's own bytes.</summary>
public sealed class BodyRewriterTests
{
    private static string Rewrite(string body, bool includeUsage, bool dropSalt, string? model = null) =>
        Encoding.UTF8.GetString(BodyRewriter.Rewrite(Encoding.UTF8.GetBytes(body), includeUsage, dropSalt, model));

    [Fact]
    public void Untouched_Values_KeepTheirOriginalBytes()
    {
        string body = """{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 1.50e2"}],"temperature":1.50e0,"stream":true}""";

        string result = Rewrite(body, includeUsage: true, dropSalt: false);

        Assert.Equal("""{"model":"m","messages":[{"role":"user","content":"caf\u00e9 \ud83d\ude00 1.50e2"}],"temperature":1.50e0,"stream":true,"stream_options":{"include_usage":true}}""", result);
    }

    [Fact]
    public void StreamOptions_KeepsTheClientsOtherOptions_AndForcesIncludeUsage()
    {
        string result = Rewrite("""{"stream_options":{"include_usage":false,"continuous_usage_stats":true},"model":"m"}""", includeUsage: true, dropSalt: false);

        Assert.Equal("""{"stream_options":{"continuous_usage_stats":true,"include_usage":true},"model":"m"}""", result);
    }

    [Fact]
    public void StreamOptions_NotAnObject_IsReplaced()
    {
        string result = Rewrite("""{"stream_options":null,"model":"m"}""", includeUsage: true, dropSalt: false);

        Assert.Equal("""{"stream_options":{"include_usage":true},"model":"m"}""", result);
    }

    [Fact]
    public void CacheSalt_IsDropped_AndModelRenamed()
    {
        string result = Rewrite("""{"cache_salt":"other-tenant","model":"alias","n":1}""", includeUsage: false, dropSalt: true, model: "served");

        Assert.Equal("""{"model":"served","n":1}""", result);
        using var doc = JsonDocument.Parse(result);
        Assert.False(doc.RootElement.TryGetProperty("cache_salt", out _));
    }

    [Fact]
    public void Model_Absent_IsAdded()
    {
        Assert.Equal("""{"n":1,"model":"served"}""", Rewrite("""{"n":1}""", includeUsage: false, dropSalt: false, model: "served"));
    }
}
