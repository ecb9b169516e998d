using Worker.Contract;
using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

/// <summary>The engine with a host tier: reload cost, hit accounting by tier, state, retain hints naming a tier, prefetch.</summary>
public class HostTierEngineTests
{
    private static LlmEngine Engine(int kvBlocks, int hostBlocks, FakeTimeProvider? time = null) =>
        new(new EngineOptions
        {
            Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B),
            KvBlocks = kvBlocks,
            HostKvBlocks = hostBlocks,
        }, time ?? new FakeTimeProvider());

    /// <summary>Runs a 4096-token context, flushes it out of HBM with other prompts, then asks for it again; returns the repeat's first-token step.</summary>
    private static (SequenceEvent First, StepResult Step) Returning(LlmEngine engine)
    {
        Submit(engine, Request("ctx", 4096, 1, doc: 1));
        RunToCompletion(engine);
        for (int i = 0; i < 3; i++)
        {
            Submit(engine, Request("flush" + i, 4096, 1, doc: 10 + i));
            RunToCompletion(engine);
        }

        Submit(engine, Request("again", 4096 + 16, 1, doc: 1));
        var all = RunToCompletion(engine);
        var first = all.First(e => e.Event.Kind == SequenceEventKind.FirstToken);
        return (first.Event, first.Step);
    }

    [Fact]
    public void ReturningContext_EvictedFromHbm_IsReloadedFromHostInsteadOfRecomputed()
    {
        var withHost = Engine(kvBlocks: 600, hostBlocks: 2000);
        var hbmOnly = Engine(kvBlocks: 600, hostBlocks: 0);

        var (reload, reloadStep) = Returning(withHost);
        var (recompute, recomputeStep) = Returning(hbmOnly);

        Assert.Equal(4096, reload.CachedTokens);
        Assert.True(reload.ReloadedTokens > 0 && reload.ReloadedTokens <= 4096);
        Assert.Equal(reload.ReloadedTokens, reloadStep.ReloadedTokens);
        Assert.True(recompute.CachedTokens < reload.CachedTokens);
        Assert.True(reloadStep.Duration < recomputeStep.Duration, $"reload {reloadStep.Duration} vs recompute {recomputeStep.Duration}");

        var state = withHost.GetState();
        Assert.Equal(reload.ReloadedTokens, state.PrefixCacheHostHitTokens);
        Assert.Equal(2000, state.HostKvBlocksTotal);
        Assert.True(state.HostKvBlocksCached > 0 && state.HostKvStoresTotal > 0);
        Assert.Equal(reload.ReloadedTokens / 16, state.HostKvReloadedBlocksTotal);
        Assert.Equal(0, hbmOnly.GetState().HostKvBlocksTotal);
    }

    [Fact]
    public void ReloadStep_CostsTheCopyOverlappedWithComputeLayerByLayer()
    {
        var profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B);
        double load = profile.HostLoadSeconds(100_000);

        Assert.InRange(load, 100_000.0 * 131072 / 50e9 * 0.999, 100_000.0 * 131072 / 50e9 * 1.001); // 128 KiB per token at 50 GB/s
        Assert.Equal(load + 0.01 / 32, profile.TieredStepSeconds(0.01, load, 0), 9);        // copy-bound: one layer of compute sticks out
        Assert.Equal(load / 32 + 1.0, profile.TieredStepSeconds(1.0, load, 0), 9);           // compute-bound: one layer of copy sticks out
        Assert.Equal(0.5 + 1.0, profile.TieredStepSeconds(1.0, 0, 0.5), 9);
    }

    [Fact]
    public void DefaultHostTier_IsTwiceTheHbmPool()
    {
        var options = new EngineOptions { Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B), KvBlocks = 1000, HostKvBlocks = -1 };

        Assert.Equal(2000, options.EffectiveHostKvBlocks);
        Assert.Equal(0, new EngineOptions { Profile = options.Profile, KvBlocks = 1000 }.EffectiveHostKvBlocks);
    }

    [Fact]
    public void RetainNamingTheHostTier_KeepsTheContextReloadableAfterHbmPressure()
    {
        var time = new FakeTimeProvider();
        var engine = Engine(kvBlocks: 600, hostBlocks: 600, time); // host pins may hold half: 300
        Submit(engine, Request("ctx", 4096, 1, doc: 1, session: "s"));
        RunToCompletion(engine);
        var pinned = engine.Retain(new RetainRequest { SessionId = "s", TtlMs = 60_000, Tier = KvPinTier.Host });
        Assert.Equal(256, pinned.PinnedBlocks);

        for (int i = 0; i < 4; i++)
        {
            Submit(engine, Request("flush" + i, 4096, 1, doc: 10 + i)); // 1,024 blocks of churn through a 600-block host tier
            RunToCompletion(engine);
        }

        Assert.Equal(256, engine.TieredPrefixBlocks(Chain(1, 256), out int host));
        Assert.Equal(256, host);
        Assert.Equal(256, engine.GetState().HostKvBlocksPinned);
        Assert.Equal(256, engine.Release(new ReleaseRequest { SessionId = "s" }));
        Assert.Equal(0, engine.GetState().HostKvBlocksPinned);
    }

    [Fact]
    public void Prefetch_BringsTheSessionBackSoItsNextTurnFindsItInHbm()
    {
        var time = new FakeTimeProvider();
        var engine = Engine(kvBlocks: 600, hostBlocks: 2000, time);
        Submit(engine, Request("ctx", 2048, 1, doc: 1, session: "s"));
        RunToCompletion(engine);
        for (int i = 0; i < 4; i++)
        {
            // The last one decodes 2,400 tokens into blocks that are never cached: free again once it finishes.
            Submit(engine, Request("flush" + i, 4096, i == 3 ? 2400 : 1, doc: 10 + i));
            RunToCompletion(engine);
        }

        Assert.Equal(0, engine.CachedPrefixBlocks(Chain(1, 128)));
        var result = engine.Prefetch(new PrefetchRequest { SessionId = "s" });

        Assert.Equal(128, result.LoadedBlocks);
        Assert.True(result.ReadySeconds > 0);
        time.Advance(TimeSpan.FromSeconds(result.ReadySeconds));
        Submit(engine, Request("again", 2048 + 16, 1, doc: 1, session: "s"));
        var first = RunToCompletion(engine).First(e => e.Event.Kind == SequenceEventKind.FirstToken).Event;
        Assert.Equal(2048, first.CachedTokens);
        Assert.Equal(0, first.ReloadedTokens);
    }

    [Fact]
    public void Prefetch_NeverTakesTheBlocksRunningWorkStillNeeds()
    {
        var engine = Engine(kvBlocks: 600, hostBlocks: 2000);
        Submit(engine, Request("ctx", 4096, 1, doc: 1, session: "s"));
        RunToCompletion(engine);
        for (int i = 0; i < 3; i++)
        {
            Submit(engine, Request("flush" + i, 4096, 1, doc: 10 + i));
            RunToCompletion(engine);
        }

        Submit(engine, Request("running", 8000, 400, doc: 50));  // needs 525 blocks to finish
        engine.Step();

        var result = engine.Prefetch(new PrefetchRequest { SessionId = "s" });

        Assert.True(result.BudgetBlocks <= 600 - 525, $"budget {result.BudgetBlocks}");
        Assert.True(result.LoadedBlocks <= result.BudgetBlocks);
        var events = RunToCompletion(engine);
        Assert.Equal(0, engine.GetState().PreemptionsTotal);
        Assert.Contains(events, e => e.Event.RequestId == "running" && e.Event.Kind == SequenceEventKind.Finished);
    }

    [Fact]
    public void TokenProducingBackend_WithoutACopier_RefusesAHostTier()
    {
        var options = new EngineOptions { Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B), KvBlocks = 64, HostKvBlocks = 64 };

        Assert.Throws<ArgumentException>(() => new LlmEngine(options, new FakeTimeProvider(), new NullTokenExecutor()));
    }

    private sealed class NullTokenExecutor : ITokenStepExecutor
    {
        public int EosTokenId => -1;

        public TimeSpan Execute(StepPlan plan, Span<int> nextTokens) => TimeSpan.Zero;
    }
}
