using Gateway.Core.Tenancy;

namespace Gateway.Core.Tests.Tenancy;

public class TenantTreeTests
{
    internal static TenantTreeConfig Sample() => new()
    {
        Tenants =
        [
            new TenantNodeConfig
            {
                Name = "acme",
                Weight = 2,
                AllowedModels = ["llama3-8b", "llama3-70b"],
                Children =
                [
                    new TenantNodeConfig
                    {
                        Name = "search",
                        Quota = new TenantQuota { QueueTimeout = TimeSpan.FromSeconds(5) },
                        Children =
                        [
                            new TenantNodeConfig { Name = "k1", ApiKeys = ["sk-acme-1"], AllowedModels = ["llama3-8b"] },
                            new TenantNodeConfig { Name = "k2", ApiKeys = ["sk-acme-2"], Weight = 3 },
                        ],
                    },
                    new TenantNodeConfig
                    {
                        Name = "etl",
                        Priority = PriorityClass.Batch,
                        Sheddable = true,
                        Children = [new TenantNodeConfig { Name = "k3", ApiKeys = ["sk-acme-3"] }],
                    },
                ],
            },
            new TenantNodeConfig { Name = "beta", Children = [new TenantNodeConfig { Name = "k1", ApiKeys = ["sk-beta-1"] }] },
        ],
    };

    [Fact]
    public void Build_Sample_InheritsPriorityTimeoutAndAllowLists()
    {
        var tree = TenantTree.Build(Sample());
        Assert.True(tree.TryResolveApiKey("sk-acme-3", out var k3));
        Assert.Equal("acme/etl/k3", k3!.Path);
        Assert.Equal(PriorityClass.Batch, k3.Priority);
        Assert.True(k3.Sheddable);
        var k1 = tree.Find("acme/search/k1")!;
        Assert.Equal(PriorityClass.Interactive, k1.Priority);
        Assert.Equal(TimeSpan.FromSeconds(5), k1.QueueTimeout);
        Assert.True(k1.IsModelAllowed("llama3-8b"));
        Assert.False(k1.IsModelAllowed("llama3-70b")); // its own list is narrower
        Assert.True(tree.Find("acme/search/k2")!.IsModelAllowed("llama3-70b"));
        Assert.False(tree.Find("acme/search/k2")!.IsModelAllowed("gpt-4")); // the org's list still applies
        Assert.Equal(2, tree.WeightOf("acme"));
        Assert.Equal(3, tree.WeightOf("acme/search/k2"));
        Assert.Equal(1, tree.WeightOf("nobody"));
        Assert.False(tree.TryResolveApiKey("sk-unknown", out _));
    }

    [Fact]
    public void Build_InvalidConfig_CollectsEveryErrorWithoutPrintingKeys()
    {
        var config = new TenantTreeConfig
        {
            Tenants =
            [
                new TenantNodeConfig { Name = "a/b", Weight = 1 },
                new TenantNodeConfig { Name = "x", Weight = 0, ApiKeys = ["sk-secret-dup"] },
                new TenantNodeConfig { Name = "x" },
                new TenantNodeConfig
                {
                    Name = "y",
                    ApiKeys = ["sk-secret-dup"],
                    Quota = new TenantQuota { TokensPerMinute = -1, MaxConcurrent = 0 },
                },
            ],
        };
        var ex = Assert.Throws<TenantConfigException>(() => TenantTree.Build(config));
        Assert.True(ex.Errors.Count >= 6, string.Join(" | ", ex.Errors));
        Assert.DoesNotContain("sk-secret", ex.Message, StringComparison.Ordinal);
    }
}
