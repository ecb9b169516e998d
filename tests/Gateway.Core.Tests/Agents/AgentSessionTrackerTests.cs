using Gateway.Core.Agents;
using Gateway.Core.Tests.Routing;

namespace Gateway.Core.Tests.Agents;

public class AgentSessionTrackerTests
{
    [Fact]
    public void Resolve_ExplicitId_Wins()
    {
        var t = new AgentSessionTracker();
        var id = t.Resolve("org-a", "s-1", null, "claude-code", Chains.Of(1, 4));
        Assert.Equal("s-1", id.SessionId);
        Assert.Equal("header", id.Source);
        Assert.Equal("claude-code", id.AgentKind);
    }

    [Fact]
    public void Resolve_NoId_RequestExtendingEarlierChain_JoinsItsSession()
    {
        var t = new AgentSessionTracker();
        var turn1 = Chains.Of(1, 10);
        var turn2 = Chains.Extend(turn1, 100, 5);
        var turn3 = Chains.Extend(turn2, 200, 3);
        var a = t.Resolve("org-a", null, null, null, turn1);
        var b = t.Resolve("org-a", null, null, null, turn2);
        var c = t.Resolve("org-a", null, null, null, turn3);
        Assert.Equal("new", a.Source);
        Assert.Equal("chain", b.Source);
        Assert.Equal(a.SessionId, b.SessionId);
        Assert.Equal(a.SessionId, c.SessionId);
    }

    [Fact]
    public void Resolve_NoId_UnrelatedChainOrOtherTenant_StartsNewSession()
    {
        var t = new AgentSessionTracker();
        var turn1 = Chains.Of(1, 10);
        var a = t.Resolve("org-a", null, null, null, turn1);
        var other = t.Resolve("org-a", null, null, null, Chains.Of(500, 10));
        var otherTenant = t.Resolve("org-b", null, null, null, Chains.Extend(turn1, 100, 5));
        Assert.NotEqual(a.SessionId, other.SessionId);
        Assert.NotEqual(a.SessionId, otherTenant.SessionId);
        Assert.Equal("new", otherTenant.Source);
    }

    [Fact]
    public void Resolve_SubAgent_IsChildOfParent_AndRemembered()
    {
        var t = new AgentSessionTracker();
        t.Resolve("org-a", "parent", null, "claude-code", Chains.Of(1, 3));
        var child = t.Resolve("org-a", "child", "parent", "Explore", Chains.Of(50, 3));
        var again = t.Resolve("org-a", "child", null, "Explore", Chains.Of(50, 4));
        Assert.Equal("parent", child.ParentSessionId);
        Assert.Equal("parent", again.ParentSessionId);
        Assert.Equal("parent", t.ParentOf("child"));
        Assert.Null(t.ParentOf("parent"));
    }

    [Fact]
    public void Resolve_ManyChains_MemoryStaysBounded()
    {
        var t = new AgentSessionTracker(capacity: 100);
        for (int i = 0; i < 1000; i++)
        {
            t.Resolve("org-a", null, null, null, Chains.Of(i * 10L, 2));
        }

        Assert.True(t.Count <= 100);
    }
}
