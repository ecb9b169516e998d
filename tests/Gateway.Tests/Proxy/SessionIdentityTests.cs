using System.Globalization;
using Llm.Prompt.Hashing;
using Gateway.Proxy;

namespace Gateway.Tests.Proxy;

/// <summary>
/// The tenant-scoped session id is a stable format: replicas and versions share session bindings through Redis, so it
/// must stay "s" + the 16 hex digits of xxHash64("tenant path\0client id", 0x5E551D00).
/// </summary>
public sealed class SessionIdentityTests
{
    private static string Expected(string path, string id) =>
        "s" + TextHash.Utf8XxHash64(path + "\u0000" + id, 0x5E55_1D00UL).ToString("x16", CultureInfo.InvariantCulture);

    [Theory]
    [InlineData("demo/default/demo-key", "sess-42")]
    [InlineData("a/t/k", "")]
    [InlineData("a/t/k", "ünïcødé session ✓")]
    public void Scope_IsTheHashOfTenantPathAndClientId(string path, string id)
    {
        Assert.Equal(Expected(path, id), SessionIdentity.Scope(path, id));
    }

    [Fact]
    public void Scope_LongTenantPathAndId_SameFormat()
    {
        string path = new('p', 400), id = new('i', 256);

        Assert.Equal(Expected(path, id), SessionIdentity.Scope(path, id));
    }
}
