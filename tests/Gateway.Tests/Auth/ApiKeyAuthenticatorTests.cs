using Gateway.Auth;
using Gateway.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Auth;

public sealed class ApiKeyAuthenticatorTests
{
    private static ApiKeyAuthenticator Create(params (string Key, string Tenant)[] keys)
    {
        var o = new GatewayOptions();
        o.Auth.ServerSecret = "s3cret";
        o.Auth.DemoKey.Enabled = false;
        foreach (var (k, t) in keys)
        {
            o.Auth.Keys.Add(new ApiKeyOptions { Hash = ApiKeyAuthenticator.HashKey("s3cret", k), Tenant = t });
        }

        return new ApiKeyAuthenticator(Options.Create(o));
    }

    [Fact]
    public void Authenticate_KnownKey_MapsToTenant()
    {
        var a = Create(("sk-a", "acme/search/a"), ("sk-b", "globex/ml/b"));
        Assert.Equal("acme/search/a", a.Authenticate("Bearer sk-a")!.Path);
        Assert.Equal("globex/ml/b", a.Authenticate("bearer sk-b")!.Path);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Bearer ")]
    [InlineData("Bearer sk-c")]
    [InlineData("Basic sk-a")]
    [InlineData("sk-a")]
    public void Authenticate_BadHeader_Null(string header) => Assert.Null(Create(("sk-a", "acme/search/a")).Authenticate(header));

    [Fact]
    public void HashKey_IsHmacSha256Hex()
    {
        string expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData("s3cret"u8, "sk-a"u8));
        Assert.Equal(expected, ApiKeyAuthenticator.HashKey("s3cret", "sk-a"));
    }

    [Fact]
    public void CacheSalt_SameOrgShares_DifferentOrgsDiffer()
    {
        var a = Create(("sk-a", "acme/search/a"), ("sk-a2", "acme/ads/x"), ("sk-b", "globex/ml/b"));
        var t1 = a.Authenticate("Bearer sk-a")!;
        var t2 = a.Authenticate("Bearer sk-a2")!;
        var t3 = a.Authenticate("Bearer sk-b")!;
        Assert.Equal(t1.CacheSalt, t2.CacheSalt);
        Assert.NotEqual(t1.CacheSalt, t3.CacheSalt);
        Assert.NotEqual(t1.CacheSalt64, t3.CacheSalt64);
    }
}
