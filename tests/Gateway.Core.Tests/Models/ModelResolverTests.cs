using Gateway.Core.Models;

namespace Gateway.Core.Tests.Models;

public class ModelResolverTests
{
    private static readonly HashSet<string> Served = ["llama3-8b", "llama3-8b-canary", "qwen-7b"];

    private static bool IsServed(string m) => Served.Contains(m);

    private static Dictionary<string, string> Map(params (string From, string To)[] pairs) =>
        pairs.ToDictionary(p => p.From, p => p.To, StringComparer.Ordinal);

    private static ModelResolver Resolver(Dictionary<string, string>? aliases = null, Dictionary<string, IReadOnlyList<SplitSide>>? splits = null) =>
        new(new ModelRules { Aliases = aliases ?? Map(), Splits = splits ?? new(StringComparer.Ordinal) });

    [Fact]
    public void AServedModel_ResolvesToItself()
    {
        var r = Resolver().Resolve("qwen-7b", ModelScope.Open, 1, IsServed);
        Assert.Equal(new ModelResolution(ModelOutcome.Served, "qwen-7b"), r);
    }

    [Fact]
    public void AnUnknownName_IsNotFound()
    {
        Assert.Equal(ModelOutcome.NotFound, Resolver().Resolve("gpt-9", ModelScope.Open, 1, IsServed).Outcome);
    }

    [Fact]
    public void AGlobalAlias_LeadsToItsServedModel()
    {
        var r = Resolver(Map(("claude-sonnet-4-5", "llama3-8b"))).Resolve("claude-sonnet-4-5", ModelScope.Open, 1, IsServed);
        Assert.Equal(ModelOutcome.Served, r.Outcome);
        Assert.Equal("llama3-8b", r.Model);
    }

    [Fact]
    public void ATenantAlias_WinsOverTheGlobalOne_ForThatTenantOnly()
    {
        var resolver = Resolver(Map(("claude-sonnet-4-5", "llama3-8b")));
        var tenant = new ModelScope { Aliases = Map(("claude-sonnet-4-5", "qwen-7b")) };
        Assert.Equal("qwen-7b", resolver.Resolve("claude-sonnet-4-5", tenant, 1, IsServed).Model);
        Assert.Equal("llama3-8b", resolver.Resolve("claude-sonnet-4-5", ModelScope.Open, 1, IsServed).Model);
    }

    [Fact]
    public void AnAliasToAModelNobodyServes_IsNotFound_UnderTheRequestedName()
    {
        var r = Resolver(Map(("claude-opus-4", "llama3-70b"))).Resolve("claude-opus-4", ModelScope.Open, 1, IsServed);
        Assert.Equal(new ModelResolution(ModelOutcome.NotFound, "claude-opus-4"), r);
    }

    [Fact]
    public void AnAliasCycle_IsNotFound_NotAnEndlessLoop()
    {
        var r = Resolver(Map(("a", "b"), ("b", "a"))).Resolve("a", ModelScope.Open, 1, IsServed);
        Assert.Equal(ModelOutcome.NotFound, r.Outcome);
    }

    [Fact]
    public void TheAllowList_AdmitsTheRequestedNameOrAnAliasTarget()
    {
        var resolver = Resolver(Map(("claude-sonnet-4-5", "llama3-8b")));
        var onlyLlama = new ModelScope { Allowed = new HashSet<string> { "llama3-8b" } };
        var onlyAlias = new ModelScope { Allowed = new HashSet<string> { "claude-sonnet-4-5" } };
        var onlyQwen = new ModelScope { Allowed = new HashSet<string> { "qwen-7b" } };
        Assert.Equal(ModelOutcome.Served, resolver.Resolve("claude-sonnet-4-5", onlyLlama, 1, IsServed).Outcome);
        Assert.Equal(ModelOutcome.Served, resolver.Resolve("claude-sonnet-4-5", onlyAlias, 1, IsServed).Outcome);
        Assert.Equal(new ModelResolution(ModelOutcome.NotAllowed, "claude-sonnet-4-5"), resolver.Resolve("claude-sonnet-4-5", onlyQwen, 1, IsServed));
        Assert.Equal(ModelOutcome.NotAllowed, resolver.Resolve("llama3-8b", onlyQwen, 1, IsServed).Outcome);
    }

    [Fact]
    public void ASplit_SendsAboutItsWeightToEachSide_AndAKeyAlwaysToTheSameSide()
    {
        var resolver = Resolver(splits: new(StringComparer.Ordinal)
        {
            ["llama3-8b"] = [new SplitSide("llama3-8b", 90), new SplitSide("llama3-8b-canary", 10)],
        });
        int canary = 0;
        for (ulong key = 0; key < 10_000; key++)
        {
            var r = resolver.Resolve("llama3-8b", ModelScope.Open, key, IsServed);
            Assert.Equal(ModelOutcome.Served, r.Outcome);
            Assert.Equal("llama3-8b", r.Split);
            canary += r.Model == "llama3-8b-canary" ? 1 : 0;
            Assert.Equal(r.Model, resolver.Resolve("llama3-8b", ModelScope.Open, key, IsServed).Model);
        }

        Assert.InRange(canary, 800, 1200); // 10 % of 10 000 keys, within a wide margin
    }

    [Fact]
    public void ASessionsKey_StaysOnOneSide_AcrossTurns()
    {
        var resolver = Resolver(splits: new(StringComparer.Ordinal)
        {
            ["code"] = [new SplitSide("llama3-8b", 50), new SplitSide("qwen-7b", 50)],
        });
        var sides = new HashSet<string>();
        for (int session = 0; session < 64; session++)
        {
            ulong key = ModelResolver.StickyKey("s" + session, requestId: 0);
            var first = resolver.Resolve("code", ModelScope.Open, key, IsServed).Model;
            for (long turn = 1; turn < 5; turn++)
            {
                Assert.Equal(first, resolver.Resolve("code", ModelScope.Open, ModelResolver.StickyKey("s" + session, turn), IsServed).Model);
            }

            sides.Add(first);
        }

        Assert.Equal(2, sides.Count); // both sides are used across sessions
    }

    [Fact]
    public void ASplitWhoseCanaryPoolIsGone_SendsEverythingToTheOtherSide()
    {
        var resolver = Resolver(splits: new(StringComparer.Ordinal)
        {
            ["code"] = [new SplitSide("llama3-8b", 50), new SplitSide("llama3-70b", 50)],
        });
        for (ulong key = 0; key < 100; key++)
        {
            Assert.Equal("llama3-8b", resolver.Resolve("code", ModelScope.Open, key, IsServed).Model);
        }

        var none = Resolver(splits: new(StringComparer.Ordinal) { ["code"] = [new SplitSide("x", 1), new SplitSide("y", 1)] });
        Assert.Equal(ModelOutcome.NotFound, none.Resolve("code", ModelScope.Open, 3, IsServed).Outcome);
    }

    [Fact]
    public void TheAllowList_IsCheckedBeforeTheSplit_NotAgainstTheCanarySide()
    {
        var resolver = Resolver(splits: new(StringComparer.Ordinal)
        {
            ["llama3-8b"] = [new SplitSide("llama3-8b", 1), new SplitSide("llama3-8b-canary", 1)],
        });
        var onlyLlama = new ModelScope { Allowed = new HashSet<string> { "llama3-8b" } };
        var models = Enumerable.Range(0, 200).Select(k => resolver.Resolve("llama3-8b", onlyLlama, (ulong)k, IsServed)).ToList();
        Assert.All(models, r => Assert.Equal(ModelOutcome.Served, r.Outcome));
        Assert.Contains(models, r => r.Model == "llama3-8b-canary");
        Assert.Equal(ModelOutcome.NotAllowed, resolver.Resolve("llama3-8b-canary", onlyLlama, 1, IsServed).Outcome);
    }

    [Fact]
    public void AnAliasToASplit_IsFollowed()
    {
        var resolver = Resolver(
            Map(("claude-sonnet-4-5", "code")),
            new(StringComparer.Ordinal) { ["code"] = [new SplitSide("qwen-7b", 1)] });
        var r = resolver.Resolve("claude-sonnet-4-5", ModelScope.Open, 5, IsServed);
        Assert.Equal(new ModelResolution(ModelOutcome.Served, "qwen-7b", "code"), r);
    }

    [Fact]
    public void Visible_ListsAllowedServedModels_AndTheAliasesThatResolveForTheTenant()
    {
        var resolver = Resolver(
            Map(("claude-sonnet-4-5", "llama3-8b"), ("claude-opus-4", "llama3-70b"), ("qwen-latest", "qwen-7b")),
            new(StringComparer.Ordinal) { ["code"] = [new SplitSide("llama3-8b", 1), new SplitSide("llama3-8b-canary", 1)] });
        var tenant = new ModelScope
        {
            Aliases = Map(("mine", "llama3-8b")),
            Allowed = new HashSet<string> { "llama3-8b", "code" },
        };
        Assert.Equal(["claude-sonnet-4-5", "code", "llama3-8b", "mine"], resolver.Visible(tenant, Served, IsServed));
        Assert.Equal(["claude-sonnet-4-5", "code", "llama3-8b", "llama3-8b-canary", "qwen-7b", "qwen-latest"], resolver.Visible(ModelScope.Open, Served, IsServed));
    }
}
