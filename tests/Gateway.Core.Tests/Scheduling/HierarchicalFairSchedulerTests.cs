using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

public class HierarchicalFairSchedulerTests
{
    private static HierarchicalFairScheduler Create(string weights = "", LocalityOptions? locality = null) =>
        (HierarchicalFairScheduler)SchedulingPolicies.Create("hfair", new SchedulingPolicyContext
        {
            Weights = SchedulingPolicyContext.ParseWeights(weights),
            Locality = locality ?? LocalityOptions.Default,
        });

    private static double[] Shares(IReadOnlyList<ServiceLoop.Source> sources)
    {
        var total = 0.0;
        foreach (var s in sources) { total += s.Service; }
        var shares = new double[sources.Count];
        for (var i = 0; i < sources.Count; i++) { shares[i] = sources[i].Service / total; }
        return shares;
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("vtc")]
    public void EqualWeights_Backlogged_JainAtLeast099(string policy)
    {
        var scheduler = SchedulingPolicies.Create(policy, new SchedulingPolicyContext());
        var loop = new ServiceLoop(scheduler, slots: 8);
        var sources = new List<ServiceLoop.Source>();
        for (var i = 0; i < 6; i++)
        {
            // Very different backlog depths: fairness must not depend on how many requests a tenant queues.
            sources.Add(loop.Add($"org{i}/team/key", keepQueued: 1 + i * 5));
        }

        loop.Run(500);
        loop.ResetService();
        loop.Run(20_000);
        var service = new double[sources.Count];
        for (var i = 0; i < service.Length; i++) { service[i] = sources[i].Service; }
        Assert.True(ServiceLoop.Jain(service) >= 0.99, $"Jain {ServiceLoop.Jain(service):F4}: {string.Join(", ", service)}");
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("vtc")]
    public void Weights1234_Backlogged_SharesWithin5PercentOfTarget(string policy)
    {
        var scheduler = SchedulingPolicies.Create(policy, new SchedulingPolicyContext
        {
            Weights = SchedulingPolicyContext.ParseWeights("a=1,b=2,c=3,d=4"),
        });
        var loop = new ServiceLoop(scheduler, slots: 8, seed: 7);
        var sources = new[] { loop.Add("a", 3), loop.Add("b", 3), loop.Add("c", 3), loop.Add("d", 3) };
        loop.Run(500);
        loop.ResetService();
        loop.Run(30_000);
        var shares = Shares(sources);
        double[] target = [0.1, 0.2, 0.3, 0.4];
        for (var i = 0; i < 4; i++)
        {
            Assert.True(Math.Abs(shares[i] - target[i]) <= 0.05 * target[i], $"tenant {i}: share {shares[i]:F4} vs {target[i]}");
        }
    }

    [Fact]
    public void TwoLevelTree_OrgAWeight2With3Keys_GetsTwoThirdsSplitEvenlyWhateverConcurrency()
    {
        var loop = new ServiceLoop(Create("orgA=2,orgB=1"), slots: 8, seed: 3);
        var a1 = loop.Add("orgA/k1", keepQueued: 1);
        var a2 = loop.Add("orgA/k2", keepQueued: 6);
        var a3 = loop.Add("orgA/k3", keepQueued: 30);
        var b1 = loop.Add("orgB/k1", keepQueued: 30);
        loop.Run(500);
        loop.ResetService();
        loop.Run(30_000);
        var s = Shares([a1, a2, a3, b1]);
        var orgA = s[0] + s[1] + s[2];
        Assert.InRange(orgA, 2.0 / 3 * 0.95, 2.0 / 3 * 1.05);
        for (var i = 0; i < 3; i++)
        {
            Assert.InRange(s[i], 2.0 / 9 * 0.95, 2.0 / 9 * 1.05);
        }
    }

    [Fact]
    public void ManySessionsUnderOneKey_DoNotBeatSiblingKeyWithOneSession()
    {
        var loop = new ServiceLoop(Create(), slots: 8, seed: 5);
        var many = new List<ServiceLoop.Source>();
        for (var i = 0; i < 40; i++)
        {
            many.Add(loop.Add("org/team/k-many", keepQueued: 2, session: $"s{i}"));
        }

        var single = loop.Add("org/team/k-one", keepQueued: 2, session: "only");
        loop.Run(500);
        loop.ResetService();
        loop.Run(30_000);
        var manyService = 0.0;
        foreach (var s in many) { manyService += s.Service; }
        var ratio = manyService / single.Service;
        Assert.InRange(ratio, 0.95, 1.05);
    }

    [Fact]
    public void ManySessionsUnderOneKey_FlatVtcPerSession_WouldLetThemWin()
    {
        // Contrast for the test above: VTC with one client per session gives the many-session key ~40x.
        var loop = new ServiceLoop(new VtcScheduler(), slots: 8, seed: 5);
        var many = new List<ServiceLoop.Source>();
        for (var i = 0; i < 40; i++)
        {
            many.Add(loop.Add($"org/team/k-many/s{i}", keepQueued: 2));
        }

        var single = loop.Add("org/team/k-one/only", keepQueued: 2);
        loop.Run(5_000);
        var manyService = 0.0;
        foreach (var s in many) { manyService += s.Service; }
        Assert.True(manyService / single.Service > 10, $"ratio {manyService / single.Service:F2}");
    }

    [Theory]
    [InlineData("hfair")]
    [InlineData("vtc")]
    public void Lift_TenantReturningFromIdle_DoesNotBankCredit(string policy)
    {
        var scheduler = SchedulingPolicies.Create(policy, new SchedulingPolicyContext());
        var loop = new ServiceLoop(scheduler, slots: 4, seed: 11);
        var busy = loop.Add("busy", keepQueued: 4);
        var idle = loop.Add("idle", keepQueued: 0);
        loop.Run(10_000); // busy is served alone for a long time
        idle.KeepQueued = 4;
        loop.ResetService();
        loop.Run(2_000);
        // Without the lift, "idle" would be served exclusively until its counter caught up (10k ticks' worth).
        var share = idle.Service / (idle.Service + busy.Service);
        Assert.InRange(share, 0.40, 0.60);
    }

    [Fact]
    public void InteractiveBeforeBatch_BatchWaitsWhileInteractiveQueued()
    {
        var s = Create();
        s.Enqueue(new QueuedRequest { Id = 1, TenantPath = "b", PriorityClass = 1, PromptTokens = 10 });
        s.Enqueue(new QueuedRequest { Id = 2, TenantPath = "b", PriorityClass = 1, PromptTokens = 10 });
        s.Enqueue(new QueuedRequest { Id = 3, TenantPath = "i", PriorityClass = 0, PromptTokens = 10 });
        s.Charge("b", -1_000_000); // even a far less served batch tenant waits for interactive work
        s.Enqueue(new QueuedRequest { Id = 4, TenantPath = "i", PriorityClass = 0, PromptTokens = 10 });
        Assert.Equal(3, s.Dequeue()!.Id);
        Assert.Equal(4, s.Dequeue()!.Id);
        Assert.Equal(1, s.Dequeue()!.Id);
        Assert.Equal(2, s.Dequeue()!.Id);
        Assert.Null(s.Dequeue());
    }

    [Fact]
    public void InteractiveBeforeBatch_InServiceLoop_BatchGetsOnlyLeftovers()
    {
        var loop = new ServiceLoop(Create(), slots: 4, seed: 2);
        var interactive = loop.Add("i", keepQueued: 8, priorityClass: 0);
        var batch = loop.Add("b", keepQueued: 2, priorityClass: 1);
        loop.Run(3_000);
        Assert.True(interactive.Dispatched > 0);
        Assert.Equal(0, batch.Dispatched);
        interactive.KeepQueued = 0;
        loop.Run(500);
        Assert.True(batch.Dispatched > 0);
    }

    [Fact]
    public void Locality_WithinBound_PrefersAffinityButNeverExceedsLag()
    {
        const double bound = 2_000;
        var s = Create(locality: new LocalityOptions { LagBound = bound });
        var loop = new ServiceLoop(s, slots: 8, seed: 9)
        {
            Affinity = r => r.TenantPath == "a" ? 1 : 0,
        };
        var a = loop.Add("a", 4);
        var b = loop.Add("b", 4);
        var c = loop.Add("c", 4);
        var picksOfA = 0;
        var maxLagAtPick = double.NegativeInfinity;
        double va = 0, vmin = 0;
        loop.BeforePick = () =>
        {
            va = s.VruntimeOf("a");
            vmin = Math.Min(va, Math.Min(s.VruntimeOf("b"), s.VruntimeOf("c")));
        };
        loop.AfterPick = r =>
        {
            if (r.TenantPath == "a")
            {
                picksOfA++;
                maxLagAtPick = Math.Max(maxLagAtPick, va - vmin);
            }
        };
        loop.Run(20_000);
        Assert.True(maxLagAtPick <= bound, $"a was picked {maxLagAtPick} ahead of the leader (bound {bound})");
        Assert.True(maxLagAtPick > bound / 4, "the bound was never used: locality had no effect");
        // Long-run shares still fair: the lag bound caps how far ahead a preferred tenant can run.
        var shares = Shares([a, b, c]);
        foreach (var share in shares)
        {
            Assert.InRange(share, 1.0 / 3 * 0.95, 1.0 / 3 * 1.05);
        }

        Assert.True(picksOfA > 0);
    }

    [Fact]
    public void Locality_ZeroBound_PicksOnlyLeastServedTenants()
    {
        var s = Create(locality: new LocalityOptions { LagBound = 0, PerLeafCandidates = 1 });
        var loop = new ServiceLoop(s, slots: 4, seed: 4) { Affinity = r => r.TenantPath == "x" ? 1 : 0 };
        loop.Add("x", 3);
        loop.Add("y", 3);
        loop.Add("z", 3);
        var violations = 0;
        var picks = 0;
        double vx = 0, vy = 0, vz = 0;
        loop.BeforePick = () => (vx, vy, vz) = (s.VruntimeOf("x"), s.VruntimeOf("y"), s.VruntimeOf("z"));
        loop.AfterPick = r =>
        {
            picks++;
            var chosen = r.TenantPath switch { "x" => vx, "y" => vy, _ => vz };
            if (chosen > Math.Min(vx, Math.Min(vy, vz)))
            {
                violations++;
            }
        };
        loop.Run(3_000);
        Assert.True(picks > 100);
        Assert.Equal(0, violations);
    }

    [Fact]
    public void Locality_UnboundedLag_WouldStarveOthers_ShowsTheBoundMatters()
    {
        var s = Create(locality: new LocalityOptions { LagBound = double.MaxValue });
        var loop = new ServiceLoop(s, slots: 8, seed: 9) { Affinity = r => r.TenantPath == "a" ? 1 : 0 };
        var a = loop.Add("a", 16);
        var b = loop.Add("b", 4);
        loop.Run(5_000);
        Assert.True(a.Service > 5 * b.Service);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Lift_TenantWakingUpBesideABackloggedOne_GoesFirstOnAnEqualVruntime(bool wakerCreatedLater)
    {
        // The lift places a tenant that becomes backlogged at its siblings' minimum vruntime, i.e. exactly on the
        // backlogged flooder's. That tie must go to the tenant that was idle (the flooder has just been served to
        // reach it), whichever node the tree created first; by creation order the flooder of the live noisy-neighbour
        // run (tenant-1, created first) won it and every quiet request waited one more flood prefill.
        var s = Create();
        string flooder = wakerCreatedLater ? "t/flood" : "t/quiet", waker = wakerCreatedLater ? "t/quiet" : "t/flood";
        string first = wakerCreatedLater ? flooder : waker, second = wakerCreatedLater ? waker : flooder;
        foreach (var (path, id) in new[] { (first, 100L), (second, 101L) }) // create the two nodes in this order
        {
            s.Enqueue(new QueuedRequest { Id = id, TenantPath = path });
            s.Complete(s.Dequeue()!, 0, 0);
        }

        var next = 1L;
        for (var i = 0; i < 5; i++)
        {
            s.Enqueue(new QueuedRequest { Id = next++, TenantPath = flooder, PromptTokens = 2048 });
        }

        for (var i = 0; i < 3; i++)
        {
            Assert.NotNull(s.Dequeue()); // the flooder is served and charged, its backlog remains
        }

        Assert.True(s.VruntimeOf(waker) < s.VruntimeOf(flooder));
        s.Enqueue(new QueuedRequest { Id = 99, TenantPath = waker, PromptTokens = 2048 });
        Assert.Equal(s.VruntimeOf(flooder), s.VruntimeOf(waker)); // lifted onto the flooder's vruntime
        Assert.Equal(99, s.Dequeue()!.Id);
    }

    [Fact]
    public void Locality_WithinALeaf_HeadIsNotSkippedForever()
    {
        var s = Create(locality: new LocalityOptions { LagBound = 1e9, MaxHeadSkips = 3, PerLeafCandidates = 4 });
        s.Enqueue(new QueuedRequest { Id = 1, TenantPath = "t", PromptTokens = 10 });
        var next = 2L;
        var picked = new List<long>();
        for (var i = 0; i < 6; i++)
        {
            s.Enqueue(new QueuedRequest { Id = next++, TenantPath = "t", PromptTokens = 10 });
            picked.Add(s.Dequeue(r => r.Id == 1 ? 0 : r.Id)!.Id);
        }

        Assert.Contains(1L, picked);
        Assert.True(picked.IndexOf(1L) <= 3, string.Join(",", picked));
    }

    [Fact]
    public void Settle_RefundsOverestimatedPrefill_AndChargesActualOutput()
    {
        var s = Create();
        var r = new QueuedRequest { Id = 1, TenantPath = "t/k", PromptTokens = 1000, ExpectedCachedTokens = 0 };
        s.Enqueue(r);
        Assert.Same(r, s.Dequeue());
        Assert.Equal(1000, s.ServiceOf("t"));
        s.ChargeOutput(r, 10);
        Assert.Equal(1020, s.ServiceOf("t/k"));
        s.Complete(r, cachedPromptTokens: 800, outputTokens: 15); // actual: 200 + 30
        Assert.Equal(230, s.ServiceOf("t"));
        Assert.Equal(230, s.ServiceOf("t/k"));
        s.Complete(r, 0, 100); // second settle is ignored
        Assert.Equal(230, s.ServiceOf("t"));
    }

    [Fact]
    public void Remove_QueuedRequest_LeavesNoTrace()
    {
        var s = Create();
        var r1 = new QueuedRequest { Id = 1, TenantPath = "a", SessionId = "x" };
        var r2 = new QueuedRequest { Id = 2, TenantPath = "b" };
        s.Enqueue(r1);
        s.Enqueue(r2);
        Assert.True(s.Remove(r1));
        Assert.False(s.Remove(r1));
        Assert.Equal(1, s.Count);
        Assert.Equal(0, s.QueuedUnder("a"));
        Assert.Same(r2, s.Dequeue());
        Assert.Null(s.Dequeue());
    }

    [Fact]
    public void SessionLeaves_ArePrunedWhenIdle_SoStateStaysBounded()
    {
        var s = Create();
        for (var i = 0; i < 1000; i++)
        {
            var r = new QueuedRequest { Id = i, TenantPath = "org/key", SessionId = "s" + i, PromptTokens = 5 };
            s.Enqueue(r);
            Assert.Same(r, s.Dequeue());
            s.Complete(r, 0, 1);
        }

        Assert.Equal(2, s.NodeCount); // org, org/key
        Assert.Equal(0, s.SessionCount("org/key"));
    }

    [Fact]
    public void UpdateWeights_Reload_KeepsServiceAndAppliesNewShares()
    {
        var s = Create("a=1,b=1");
        var loop = new ServiceLoop(s, slots: 4, seed: 6);
        var a = loop.Add("a", 3);
        var b = loop.Add("b", 3);
        loop.Run(3_000);
        var before = s.ServiceOf("a");
        s.UpdateWeights(p => p == "a" ? 3 : 1);
        Assert.Equal(before, s.ServiceOf("a"));
        loop.ResetService();
        loop.Run(20_000);
        Assert.InRange(a.Service / (a.Service + b.Service), 0.75 * 0.95, 0.75 * 1.05);
    }

    [Fact]
    public void ParseWeights_InvalidEntries_ReportsAll()
    {
        var ex = Assert.Throws<FormatException>(() => SchedulingPolicyContext.ParseWeights("a=1,b=-2,c,d=x"));
        Assert.Contains("b=-2", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'c'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("d=x", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_KnowsAllPolicies()
    {
        foreach (var name in SchedulingPolicies.Names)
        {
            Assert.Equal(name, SchedulingPolicies.Create(name, new SchedulingPolicyContext()).Name);
        }
    }
}
