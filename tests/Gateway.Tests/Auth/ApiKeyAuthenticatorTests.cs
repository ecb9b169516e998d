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

    [Fact]
    public void Authenticate_RepeatedKey_SameTenantEveryTime_NearMissStillRefused()
    {
        var a = Create(("sk-a", "acme/search/a"), ("sk-b", "globex/ml/b"));
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal("acme/search/a", a.Authenticate("Bearer sk-a")!.Path);
            Assert.Equal("globex/ml/b", a.Authenticate("Bearer sk-b")!.Path);
            Assert.Null(a.Authenticate("Bearer sk-ax"));
            Assert.Null(a.Authenticate("Bearer sk-"));
        }
    }

    [Fact]
    public void Reload_KeyRemovedAfterItAuthenticated_RefusedAtOnce()
    {
        var a = Create(("sk-a", "acme/search/a"), ("sk-b", "globex/ml/b"));
        Assert.NotNull(a.Authenticate("Bearer sk-a"));
        var auth = new AuthOptions { ServerSecret = "s3cret" };
        auth.DemoKey.Enabled = false;
        auth.Keys.Add(new ApiKeyOptions { Hash = ApiKeyAuthenticator.HashKey("s3cret", "sk-b"), Tenant = "globex/ml/b2" });

        a.Reload(auth);

        Assert.Null(a.Authenticate("Bearer sk-a"));
        Assert.Equal("globex/ml/b2", a.Authenticate("Bearer sk-b")!.Path);
    }

    [Fact]
    public void VerifiedKeyCache_FindsOnlyTheSameBytes_AndStaysBounded()
    {
        var cache = new VerifiedKeyCache(seed: 42);
        var tenant = new Tenant("acme/search/a", 1, [], 0, 0, "salt");
        cache.Add("sk-a"u8, tenant);

        Assert.Same(tenant, cache.Find("sk-a"u8));
        Assert.Null(cache.Find("sk-b"u8));
        Assert.Null(cache.Find("sk-a2"u8));
        Assert.Null(cache.Find(""u8));

        for (int i = 0; i < VerifiedKeyCache.Capacity + 10; i++)
        {
            cache.Add(System.Text.Encoding.UTF8.GetBytes($"sk-{i}"), tenant);
            Assert.InRange(cache.Count, 1, VerifiedKeyCache.Capacity);
        }
    }
}
