using Worker.Contract;
using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

public class LlmEngineTests
{
    [Fact]
    public void Step_LongPrompt_PrefillIsChunkedWithinTheBudget()
    {
        var engine = NewEngine(maxBatchTokens: 512);
        Submit(engine, Request("a", promptTokens: 1300, outputTokens: 2));

        var s1 = engine.Step();
        var s2 = engine.Step();
        var s3 = engine.Step();

        Assert.Equal(512, s1.PrefillTokens);
        Assert.Equal(512, s2.PrefillTokens);
        Assert.Equal(276, s3.PrefillTokens);
        Assert.Empty(s1.Events);
        Assert.Empty(s2.Events);
        Assert.Equal(SequenceEventKind.FirstToken, Assert.Single(s3.Events).Kind);
        var s4 = engine.Step();
        Assert.Equal(1, s4.DecodeTokens);
        Assert.Equal(new[] { SequenceEventKind.Token, SequenceEventKind.Finished }, s4.Events.Select(e => e.Kind));
        Assert.False(engine.HasWork);
    }

    [Fact]
    public void Step_PrefillArrivesWhileDecoding_DecodeAndPrefillShareTheStep()
    {
        var engine = NewEngine(maxBatchTokens: 256);
        Submit(engine, Request("decoder", promptTokens: 100, outputTokens: 50));
        engine.Step();                                           // prefill of "decoder" → first token
        Submit(engine, Request("long", promptTokens: 1000, outputTokens: 5));

        var mixed = engine.Step();

        Assert.Equal(1, mixed.DecodeTokens);
        Assert.Equal(255, mixed.PrefillTokens);
        Assert.Equal(2, mixed.BatchSize);
        var e = Assert.Single(mixed.Events);
        Assert.Equal(("decoder", SequenceEventKind.Token, 1), (e.RequestId, e.Kind, e.TokenIndex));

        // Every following step until "long" is prefilled still decodes "decoder".
        for (int i = 0; i < 3; i++)
        {
            var s = engine.Step();
            Assert.Equal(1, s.DecodeTokens);
            Assert.Contains(s.Events, x => x.RequestId == "decoder" && x.Kind == SequenceEventKind.Token);
        }
    }

    [Fact]
    public void Step_LongPrefillCap_ShortPromptArrivingMidPrefill_GetsItsFirstTokenInTheNextStep()
    {
        var engine = NewEngine(maxBatchTokens: 1024, longPrefill: 256);
        Submit(engine, Request("long", promptTokens: 8000, outputTokens: 2));
        Assert.Equal(1024, engine.Step().PrefillTokens);                 // alone: the whole budget (work-conserving)
        Submit(engine, Request("short", promptTokens: 100, outputTokens: 2));

        var shared = engine.Step();

        Assert.Equal(1024, shared.PrefillTokens);                        // long: 256 capped + 668 handed back
        Assert.Equal(2, shared.BatchSize);
        var first = Assert.Single(shared.Events);
        Assert.Equal(("short", SequenceEventKind.FirstToken), (first.RequestId, first.Kind));
    }

    [Fact]
    public void Step_NoLongPrefillCap_ShortPromptWaitsForTheLongPrefillToFinish()
    {
        var engine = NewEngine(maxBatchTokens: 1024);
        Submit(engine, Request("long", promptTokens: 8000, outputTokens: 2));
        engine.Step();
        Submit(engine, Request("short", promptTokens: 100, outputTokens: 2));

        int steps = 0;
        while (!engine.Step().Events.Any(e => e.RequestId == "short") && steps < 100)
        {
            steps++;
        }

        Assert.InRange(steps, 6, 8);                                     // 6,976 tokens of "long" left at 1,024 a step
    }

    [Fact]
    public void Step_LongPrefillCap_TwoLongPrefillsShareTheStep_WithoutItTheSecondWaits()
    {
        var capped = NewEngine(maxBatchTokens: 1024, longPrefill: 256);
        var alone = NewEngine(maxBatchTokens: 1024);
        foreach (var e in new[] { capped, alone })
        {
            Submit(e, Request("a", promptTokens: 3000, outputTokens: 1, doc: 1));
            Submit(e, Request("b", promptTokens: 3000, outputTokens: 1, doc: 2));
        }

        // Capped: a gets 256 + the 512 left over, b 256; without the cap a takes the budget and b waits.
        var s = capped.Step();
        Assert.Equal(1024, s.PrefillTokens);
        Assert.Equal(2, s.BatchSize);
        Assert.Equal(1, alone.Step().BatchSize);
        var firstTokens = RunToCompletion(capped).Where(x => x.Event.Kind == SequenceEventKind.FirstToken).Select(x => x.Event.RequestId).ToList();
        Assert.Equal(["a", "b"], firstTokens);
    }

    [Fact]
    public void Step_EveryRequest_EmitsEachTokenOnceInOrderThenFinished()
    {
        var engine = NewEngine();
        for (int i = 0; i < 10; i++)
        {
            Submit(engine, Request($"r{i}", promptTokens: 50 + 37 * i, outputTokens: 1 + 3 * i));
        }

        var events = RunToCompletion(engine);

        for (int i = 0; i < 10; i++)
        {
            var mine = events.Where(x => x.Event.RequestId == $"r{i}").Select(x => x.Event).ToList();
            Assert.Equal(SequenceEventKind.FirstToken, mine[0].Kind);
            Assert.Equal(Enumerable.Range(0, 1 + 3 * i), mine.Where(x => x.Kind != SequenceEventKind.Finished).Select(x => x.TokenIndex));
            Assert.Equal(SequenceEventKind.Finished, mine[^1].Kind);
        }

        var state = engine.GetState();
        Assert.Equal(0, state.KvBlocksUsed);
        Assert.Equal(0, state.RunningRequests);
    }

    [Fact]
    public void Step_BlocksRunOut_PreemptsNewestByRecomputeAndNeverRepeatsATokenIndex()
    {
        // 24 blocks of 16 = 384 tokens; three requests each growing to ~200 tokens cannot all stay resident.
        var engine = NewEngine(kvBlocks: 24);
        Submit(engine, Request("a", promptTokens: 64, outputTokens: 150, doc: 1));
        Submit(engine, Request("b", promptTokens: 64, outputTokens: 150, doc: 2));
        Submit(engine, Request("c", promptTokens: 64, outputTokens: 150, doc: 3));

        var events = RunToCompletion(engine);

        var state = engine.GetState();
        Assert.True(state.PreemptionsTotal > 0, "expected at least one preemption");
        foreach (var id in new[] { "a", "b", "c" })
        {
            var indices = events.Where(x => x.Event.RequestId == id && x.Event.Kind != SequenceEventKind.Finished).Select(x => x.Event.TokenIndex).ToList();
            Assert.Equal(Enumerable.Range(0, 150), indices);
            Assert.Single(events, x => x.Event.RequestId == id && x.Event.Kind == SequenceEventKind.Finished);
        }

        Assert.Equal(0, state.KvBlocksUsed);
        Assert.Equal(450, state.GeneratedTokensTotal);
    }

    [Fact]
    public void Step_Preemption_VictimIsTheMostRecentlyAdmitted()
    {
        var engine = NewEngine(kvBlocks: 12);       // 192 tokens
        Submit(engine, Request("old", promptTokens: 80, outputTokens: 100, doc: 1));
        Submit(engine, Request("new", promptTokens: 80, outputTokens: 100, doc: 2));
        var firstTokenStep = new Dictionary<string, int>();
        int preemptedAt = -1;
        for (int step = 0; step < 1000 && engine.HasWork; step++)
        {
            var r = engine.Step();
            if (r.Preempted > 0 && preemptedAt < 0)
            {
                preemptedAt = step;
                Assert.Equal(1, engine.RunningCount);
                Assert.Equal(1, engine.WaitingCount);
                // the survivor keeps decoding: it is "old"
                Assert.Contains(r.Events, e => e.RequestId == "old");
                Assert.DoesNotContain(r.Events, e => e.RequestId == "new");
            }
        }

        Assert.True(preemptedAt > 0);
        Assert.False(engine.HasWork);
    }

    [Fact]
    public void Step_RecomputeAfterPreemption_ReusesThePromptFromThePrefixCache()
    {
        var engine = NewEngine(kvBlocks: 48);
        Submit(engine, Request("a", promptTokens: 320, outputTokens: 200, doc: 1));
        Submit(engine, Request("b", promptTokens: 320, outputTokens: 200, doc: 2));
        int maxRecompute = 0;
        for (int i = 0; i < 10_000 && engine.HasWork; i++)
        {
            var s = engine.Step();
            if (engine.GetState().PreemptionsTotal > 0 && s.PrefillTokens > 0)
            {
                maxRecompute = Math.Max(maxRecompute, s.PrefillTokens);
            }
        }

        Assert.True(engine.GetState().PreemptionsTotal > 0);
        // Without the prefix cache the victim would re-prefill prompt + generated (> 320 tokens); most of its prompt was still cached.
        Assert.InRange(maxRecompute, 1, 319);
    }

    [Fact]
    public void Abort_RunningRequest_FreesItsBlocksAtOnce()
    {
        var engine = NewEngine();
        Submit(engine, Request("a", promptTokens: 160, outputTokens: 100, doc: 1));
        engine.Step();
        Assert.Equal(10, engine.GetState().KvBlocksUsed);

        Assert.True(engine.Abort("a"));

        var state = engine.GetState();
        Assert.Equal(0, state.KvBlocksUsed);
        Assert.Equal(0, state.RunningRequests);
        Assert.False(engine.HasWork);
        Assert.False(engine.Abort("a"));
        Assert.Empty(engine.Step().Events);
    }

    [Fact]
    public void Abort_WaitingRequest_LeavesTheQueue()
    {
        var engine = NewEngine(maxRunning: 1);
        Submit(engine, Request("a", 100, 10));
        Submit(engine, Request("b", 100, 10));
        engine.Step();
        Assert.Equal(1, engine.WaitingCount);

        Assert.True(engine.Abort("b"));

        Assert.Equal(0, engine.WaitingCount);
        Assert.Equal(0, engine.GetState().WaitingTokens);
        Assert.DoesNotContain(RunToCompletion(engine), e => e.Event.RequestId == "b");
    }

    [Theory]
    [InlineData(100_000, 40_000, "maximum model length")]
    [InlineData(0, 10, "at least 1 token")]
    [InlineData(10, 0, "at least 1 token")]
    public void Submit_ImpossibleRequest_RejectedWithReason(int prompt, int output, string reason)
    {
        var engine = NewEngine();
        var r = new EngineRequest { Id = "x", PromptTokens = prompt, OutputTokens = output, BlockHashes = [] };

        Assert.False(engine.Submit(r, out var error));
        Assert.Contains(reason, error, StringComparison.Ordinal);
        Assert.False(engine.HasWork);
    }

    [Fact]
    public void Submit_MoreBlocksThanThePool_Rejected()
    {
        var engine = NewEngine(kvBlocks: 10);
        Assert.False(engine.Submit(Request("x", promptTokens: 150, outputTokens: 20), out var error));
        Assert.Contains("KV blocks", error, StringComparison.Ordinal);
        Assert.True(engine.Submit(Request("y", promptTokens: 140, outputTokens: 20), out _));
    }

    [Fact]
    public void Submit_DuplicateLiveId_Rejected()
    {
        var engine = NewEngine();
        Submit(engine, Request("x", 10, 1));
        Assert.False(engine.Submit(Request("x", 10, 1), out var error));
        Assert.Contains("already in flight", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Step_MaxRunningSequences_CapsTheBatch()
    {
        var engine = NewEngine(maxRunning: 3);
        for (int i = 0; i < 8; i++)
        {
            Submit(engine, Request($"r{i}", 32, 20));
        }

        for (int i = 0; i < 30 && engine.HasWork; i++)
        {
            var s = engine.Step();
            Assert.InRange(s.BatchSize, 0, 3);
            Assert.InRange(engine.RunningCount, 0, 3);
        }
    }

    [Fact]
    public void Step_HigherPriority_AdmittedFirst()
    {
        var engine = NewEngine(maxRunning: 1);
        Submit(engine, new EngineRequest { Id = "low", PromptTokens = 32, OutputTokens = 1, BlockHashes = [] });
        Submit(engine, new EngineRequest { Id = "high", PromptTokens = 32, OutputTokens = 1, BlockHashes = [], Priority = 5 });

        var first = engine.Step();

        Assert.Equal("high", first.Events[0].RequestId);
    }

    [Fact]
    public void Step_SamePromptTwice_SecondReportsCachedTokensAndCounters()
    {
        var engine = NewEngine();
        Submit(engine, Request("a", promptTokens: 1000, outputTokens: 1, doc: 7));
        RunToCompletion(engine);
        Submit(engine, Request("b", promptTokens: 1000, outputTokens: 1, doc: 7));

        var first = RunToCompletion(engine).First(e => e.Event.Kind == SequenceEventKind.FirstToken).Event;

        Assert.Equal(992, first.CachedTokens);          // 62 full blocks; 1000 tokens → all 62 cached
        var state = engine.GetState();
        Assert.Equal(2000, state.PrefixCacheQueryTokens);
        Assert.Equal(992, state.PrefixCacheHitTokens);
    }

    [Fact]
    public void Step_FullyCachedBlockAlignedPrompt_RecomputesTheLastBlock()
    {
        var engine = NewEngine();
        Submit(engine, Request("a", promptTokens: 64, outputTokens: 1, doc: 3));
        RunToCompletion(engine);
        Submit(engine, Request("b", promptTokens: 64, outputTokens: 1, doc: 3));

        var s = engine.Step();

        Assert.Equal(16, s.PrefillTokens);
        Assert.Equal(48, s.Events[0].CachedTokens);
    }

    [Fact]
    public void Retain_BySession_PinsTheSessionsLastPromptAgainstEviction()
    {
        var time = new FakeTimeProvider();
        var engine = NewEngine(kvBlocks: 64, time: time);
        Submit(engine, Request("turn1", promptTokens: 320, outputTokens: 4, doc: 1, session: "agent"));
        RunToCompletion(engine);

        var result = engine.Retain(new RetainRequest { SessionId = "agent", TtlMs = 30_000, Value = 1 });
        Assert.Equal(new RetainResult(20, 0), result);

        // Unrelated traffic that needs the whole unpinned pool.
        Submit(engine, Request("other", promptTokens: 640, outputTokens: 4, doc: 2));
        RunToCompletion(engine);
        Assert.Equal(20, engine.CachedPrefixBlocks(Chain(1, 20)));

        time.Advance(TimeSpan.FromSeconds(31));
        Submit(engine, Request("other2", promptTokens: 960, outputTokens: 4, doc: 3));
        RunToCompletion(engine);
        Assert.True(engine.CachedPrefixBlocks(Chain(1, 20)) < 20, "expired pin should no longer protect the blocks");
    }

    [Fact]
    public void Step_AdmissionUnderPressure_DropsPinAndReportsIt()
    {
        var engine = NewEngine(kvBlocks: 40, maxPinned: 0.5);
        Submit(engine, Request("a", promptTokens: 320, outputTokens: 1, doc: 1, session: "s"));
        RunToCompletion(engine);
        Assert.Equal(20, engine.Retain(new RetainRequest { SessionId = "s", TtlMs = 60_000, Value = 1 }).PinnedBlocks);

        Submit(engine, Request("big", promptTokens: 400, outputTokens: 100, doc: 2));
        RunToCompletion(engine);

        var state = engine.GetState();
        Assert.Equal(1, state.PinsDroppedTotal);
        Assert.Equal(0, state.KvBlocksPinned);
        var events = new List<KvEvent>();
        engine.KvEvents.ReadAfter(0, events, out _);
        Assert.Contains(events, e => e.Type == KvEventType.PinDropped);
    }

    [Fact]
    public void Release_BySession_UnpinsAndReportsBlocks()
    {
        var engine = NewEngine();
        Submit(engine, Request("a", promptTokens: 160, outputTokens: 1, doc: 1, session: "s"));
        RunToCompletion(engine);
        engine.Retain(new RetainRequest { SessionId = "s", TtlMs = 60_000 });

        Assert.Equal(10, engine.Release(new ReleaseRequest { SessionId = "s" }));
        Assert.Equal(0, engine.GetState().KvBlocksPinned);
    }

    [Fact]
    public void Retain_ByHashes_PinsThemAndReleaseByHashesUnpins()
    {
        var engine = NewEngine(kvBlocks: 40);
        var hashes = Chain(1, 10);
        Submit(engine, new EngineRequest { Id = "a", PromptTokens = 160, OutputTokens = 1, BlockHashes = hashes });
        RunToCompletion(engine);

        Assert.Equal(new RetainResult(6, 0), engine.Retain(new RetainRequest { BlockHashes = hashes[..6], TtlMs = 60_000 }));
        Assert.Equal(6, engine.GetState().KvBlocksPinned);

        Assert.Equal(2, engine.Release(new ReleaseRequest { BlockHashes = hashes[4..6] }));
        Assert.Equal(4, engine.GetState().KvBlocksPinned);
    }

    [Fact]
    public void Retain_UnknownSessionOrBadTtl_PinsNothingOrThrows()
    {
        var engine = NewEngine();
        Assert.Equal(new RetainResult(0, 0), engine.Retain(new RetainRequest { SessionId = "nobody", TtlMs = 1000 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => engine.Retain(new RetainRequest { SessionId = "s", TtlMs = 0 }));
    }

    [Fact]
    public void Finish_WithRetentionTtl_PinsThePromptBlocks()
    {
        var engine = NewEngine();
        Submit(engine, Request("a", promptTokens: 160, outputTokens: 3, doc: 1, session: "s", retentionTtlMs: 5000));

        RunToCompletion(engine);

        var state = engine.GetState();
        Assert.Equal(10, state.KvBlocksPinned);
        Assert.Equal(10, engine.KvBlocksPinned);
        Assert.Equal(10, engine.KvBlocksCached);
        Assert.Equal(0, engine.KvBlocksUsed);
        Assert.Equal(1, state.PinsActive);
        Assert.Equal(0, state.KvBlocksUsed);
    }

    [Fact]
    public void Step_SameInputsTwice_IdenticalDurationsAndEvents()
    {
        static List<string> Run()
        {
            var engine = NewEngine(kvBlocks: 60, maxBatchTokens: 300);
            var trace = new List<string>();
            for (int i = 0; i < 12; i++)
            {
                Submit(engine, Request($"r{i}", promptTokens: 40 + 53 * i, outputTokens: 5 + 7 * (i % 4), doc: i % 3));
            }

            for (int i = 0; i < 5000 && engine.HasWork; i++)
            {
                var s = engine.Step();
                trace.Add($"{s.Duration.Ticks}:{s.PrefillTokens}:{s.DecodeTokens}:{string.Join(',', s.Events)}");
            }

            return trace;
        }

        Assert.Equal(Run(), Run());
    }

    [Fact]
    public void Step_KvEvents_StoredForPromptBlocksRemovedOnEviction()
    {
        var engine = NewEngine(kvBlocks: 20);
        Submit(engine, Request("a", promptTokens: 160, outputTokens: 1, doc: 1));
        RunToCompletion(engine);
        Submit(engine, Request("b", promptTokens: 300, outputTokens: 1, doc: 2));
        RunToCompletion(engine);

        var events = new List<KvEvent>();
        engine.KvEvents.ReadAfter(0, events, out bool gap);
        Assert.False(gap);
        var stored = events.Where(e => e.Type == KvEventType.Stored).SelectMany(e => e.BlockHashes!).ToHashSet();
        Assert.Superset(Chain(1, 10).ToHashSet(), stored);
        Assert.Contains(events, e => e.Type == KvEventType.Removed);
        var snapshot = engine.KvEvents.Snapshot();
        Assert.Equal(engine.GetState().KvBlocksCached, snapshot.BlockHashes!.Length);
        foreach (var h in snapshot.BlockHashes)
        {
            Assert.Equal(1, engine.CachedPrefixBlocks([h]));
        }
    }
}
