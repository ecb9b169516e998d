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
    public void Resolve_ShortRequestNotExtendingTheMainLine_IsASideCall_AndTheNextTurnStillContinues()
    {
        var t = new AgentSessionTracker();
        var turn1 = Chains.Of(1, 400);
        Assert.False(t.Resolve("org-a", "s-1", null, "claude-code", turn1).Detached);

        // While a tool runs, the client asks for a title: same session id, a 10-block prompt of its own.
        var side = t.Resolve("org-a", "s-1", null, "claude-code", Chains.Of(9000, 10));
        Assert.True(side.Detached);
        Assert.Equal("s-1", side.SessionId);

        // The tool result comes back: the prompt extends turn 1 (not the side call), so it continues the session.
        var turn2 = Chains.Extend(turn1, 500, 30);
        Assert.False(t.Resolve("org-a", "s-1", null, "claude-code", turn2).Detached);
        Assert.False(t.Resolve("org-a", "s-1", null, "claude-code", Chains.Extend(turn2, 600, 5)).Detached);
    }

    [Fact]
    public void Resolve_RewrittenHistoryOfSimilarSize_IsTheNewMainLine_NotASideCall()
    {
        // An edited earlier message (a fork) or a retry with changes: not an extension, but not small either.
        var t = new AgentSessionTracker();
        t.Resolve("org-a", "s-1", null, null, Chains.Of(1, 400));
        var fork = Chains.Of(7000, 390);
        Assert.False(t.Resolve("org-a", "s-1", null, null, fork).Detached);
        Assert.False(t.Resolve("org-a", "s-1", null, null, Chains.Extend(fork, 8000, 20)).Detached); // the fork is the main line now
    }

    [Fact]
    public void Adopt_MakesASideCallTheMainLine()
    {
        // After a history compaction the prompt is short and new; once it ends with tool calls the host adopts it.
        var t = new AgentSessionTracker();
        t.Resolve("org-a", "s-1", null, null, Chains.Of(1, 400));
        var compacted = Chains.Of(3000, 40);
        Assert.True(t.Resolve("org-a", "s-1", null, null, compacted).Detached);

        Assert.Equal(2, t.Adopt("s-1", compacted)); // the session's second turn

        var next = t.Resolve("org-a", "s-1", null, null, Chains.Extend(compacted, 4000, 10));
        Assert.False(next.Detached);
        Assert.Equal(3, next.Turn);
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

    [Fact]
    public void Resolve_ASessionIdleLongerThanTheAge_StartsANewOne_WhileAnActiveOneContinues()
    {
        var time = new FakeTimeProvider();
        var t = new AgentSessionTracker(time: time, maxIdle: TimeSpan.FromMinutes(10));
        var idle = Chains.Of(1, 40);
        var active = Chains.Of(5000, 40);
        string idleId = t.Resolve("org-a", null, null, null, idle).SessionId;
        string activeId = t.Resolve("org-a", null, null, null, active).SessionId;
        for (int minute = 1; minute <= 12; minute++)
        {
            time.Advance(TimeSpan.FromMinutes(1));
            active = Chains.Extend(active, 10_000 + minute * 10, 2);
            Assert.Equal(activeId, t.Resolve("org-a", null, null, null, active).SessionId);
        }

        var back = t.Resolve("org-a", null, null, null, Chains.Extend(idle, 90_000, 3));
        Assert.NotEqual(idleId, back.SessionId);
        Assert.Equal("new", back.Source);
    }

    [Fact]
    public void Resolve_ASingleTurnSession_IsForgottenAfterTheSingleTurnAge()
    {
        var time = new FakeTimeProvider();
        var t = new AgentSessionTracker(time: time, maxIdle: TimeSpan.FromMinutes(10), singleTurnIdle: TimeSpan.FromMinutes(1));
        var once = Chains.Of(1, 40);
        var first = t.Resolve("org-a", null, null, null, once);
        Assert.Equal(1, first.Turn);

        time.Advance(TimeSpan.FromSeconds(61));
        t.Resolve("org-a", null, null, null, Chains.Of(5000, 40)); // any later request: ages are checked on a write
        var back = t.Resolve("org-a", null, null, null, Chains.Extend(once, 90_000, 3));

        Assert.NotEqual(first.SessionId, back.SessionId);
        Assert.Equal("new", back.Source);
        Assert.Equal(1, back.Turn);
    }

    [Fact]
    public void Resolve_ASecondTurn_GivesTheSessionTheFullAge()
    {
        var time = new FakeTimeProvider();
        var t = new AgentSessionTracker(time: time, maxIdle: TimeSpan.FromMinutes(10), singleTurnIdle: TimeSpan.FromMinutes(1));
        var chain = Chains.Of(1, 40);
        string id = t.Resolve("org-a", null, "parent-1", null, chain).SessionId;
        time.Advance(TimeSpan.FromSeconds(30));
        chain = Chains.Extend(chain, 10_000, 3);
        var second = t.Resolve("org-a", null, null, null, chain);
        Assert.Equal((id, 2), (second.SessionId, second.Turn));

        time.Advance(TimeSpan.FromMinutes(9));    // far past the single-turn age, within the full one
        t.Resolve("org-a", null, null, null, Chains.Of(5000, 40));
        var third = t.Resolve("org-a", null, null, null, Chains.Extend(chain, 20_000, 3));

        Assert.Equal((id, "chain", 3), (third.SessionId, third.Source, third.Turn));
        Assert.Equal("parent-1", third.ParentSessionId);
    }

    [Fact]
    public void Resolve_AfterABurstOfOneShotRequests_MemoryFallsBackToTheMultiTurnSessions()
    {
        var time = new FakeTimeProvider();
        var t = new AgentSessionTracker(time: time, maxIdle: TimeSpan.FromMinutes(10), singleTurnIdle: TimeSpan.FromMinutes(1));
        var sessions = Enumerable.Range(0, 10).Select(i => Chains.Of(i * 1000L, 20)).ToArray();
        for (int round = 0; round < 2; round++)
        {
            for (int i = 0; i < sessions.Length; i++)
            {
                sessions[i] = Chains.Extend(sessions[i], 500_000 + (round * 100) + (i * 10), 2);
                t.Resolve("org-a", null, null, null, sessions[i]);
            }
        }

        for (int i = 0; i < 5000; i++)
        {
            t.Resolve("org-b", null, null, null, Chains.Of(10_000_000L + (i * 100L), 3)); // one-shot requests
        }

        Assert.Equal(5020, t.Count);                  // each turn's last hash: 10 sessions x 2 turns, and the burst
        time.Advance(TimeSpan.FromSeconds(61));
        for (int i = 0; i < sessions.Length; i++)
        {
            sessions[i] = Chains.Extend(sessions[i], 900_000 + (i * 10), 2);
            Assert.Equal("chain", t.Resolve("org-a", null, null, null, sessions[i]).Source);
        }

        Assert.True(t.Count <= 30, $"{t.Count} chains remembered"); // the sessions' last hashes, not the burst's
    }
}

