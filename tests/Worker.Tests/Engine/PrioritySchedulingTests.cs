using Worker.Engine;
using static Worker.Tests.Engine.EngineTestKit;

namespace Worker.Tests.Engine;

/// <summary>
/// Priority inside the engine (the gateway's <c>x-request-priority</c> hint): a higher-priority request is admitted before
/// lower-priority running sequences take the step's budget, its prefill has the step to itself, and it preempts
/// lower-priority sequences by recompute when KV blocks or running slots are short. Equal priorities behave as before.
/// </summary>
public sealed class PrioritySchedulingTests
{
    private static EngineRequest WithPriority(EngineRequest r, int priority) => new()
    {
        Id = r.Id,
        PromptTokens = r.PromptTokens,
        OutputTokens = r.OutputTokens,
        BlockHashes = r.BlockHashes,
        Priority = priority,
    };

    private static LlmEngine Engine(int kvBlocks = 1024, int maxBatchTokens = 1024, int maxRunning = 256, bool exclusive = true,
        int lowPriorityPrefill = EngineOptions.DefaultLowPriorityPrefillTokens, bool serial = true, FakeTimeProvider? time = null) =>
        new(new EngineOptions
        {
            Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B),
            KvBlocks = kvBlocks,
            MaxBatchTokens = maxBatchTokens,
            MaxRunningSequences = maxRunning,
            ExclusivePriorityPrefill = exclusive,
            LowPriorityPrefillTokens = lowPriorityPrefill,
            SerialUrgentPrefill = serial,
        }, time ?? new FakeTimeProvider());

    private static TimeSpan FirstTokenAt(LlmEngine engine, string id)
    {
        var at = TimeSpan.Zero;
        for (int i = 0; i < 10_000 && engine.HasWork; i++)
        {
            var s = engine.Step();
            at += s.Duration;
            if (s.Events.Any(e => e.RequestId == id && e.Kind == SequenceEventKind.FirstToken))
            {
                return at;
            }
        }

        throw new InvalidOperationException($"{id} never produced a token");
    }

    [Fact]
    public void UrgentRequest_ArrivingDuringALongLowPriorityPrefill_TakesTheNextStepsBudgetFirst()
    {
        var engine = Engine();
        Submit(engine, Request("flood", promptTokens: 8000, outputTokens: 4, doc: 1));
        engine.Step(); // flood is running, 1,024 of 8,000 prefilled
        Submit(engine, WithPriority(Request("quiet", promptTokens: 512, outputTokens: 4, doc: 2), 1));

        var next = engine.Step();

        Assert.Equal("quiet", next.Events.Single(e => e.Kind == SequenceEventKind.FirstToken).RequestId);
        Assert.Equal(512, next.PrefillTokens); // exclusive: the flood prefill gets none of this step

        var fair = Engine(exclusive: false);
        Submit(fair, Request("flood", promptTokens: 8000, outputTokens: 4, doc: 1));
        fair.Step();
        Submit(fair, WithPriority(Request("quiet", promptTokens: 512, outputTokens: 4, doc: 2), 1));
        var shared = fair.Step();
        Assert.Equal(1024, shared.PrefillTokens);                  // without exclusivity the flood takes the rest
        Assert.Contains(shared.Events, e => e.RequestId == "quiet"); // but the urgent prefill still went first
    }

    [Fact]
    public void EqualPriorities_RunningPrefillKeepsTheBudget_NewRequestWaits()
    {
        var engine = Engine();
        Submit(engine, Request("first", promptTokens: 8000, outputTokens: 4, doc: 1));
        engine.Step();
        Submit(engine, Request("second", promptTokens: 512, outputTokens: 4, doc: 2));

        var next = engine.Step();

        Assert.Empty(next.Events);
        Assert.Equal(1, next.BatchSize); // running first, as before priorities: the budget is all "first"'s
    }

    [Fact]
    public void ExclusivePrefill_LowerPriorityDecodesStillRun()
    {
        var engine = Engine();
        Submit(engine, Request("decoder", promptTokens: 64, outputTokens: 50, doc: 1));
        engine.Step(); // prefilled, now decoding
        Submit(engine, WithPriority(Request("urgent", promptTokens: 2048, outputTokens: 2, doc: 2), 1));

        var s = engine.Step();

        Assert.Equal(1, s.DecodeTokens);
        Assert.Equal(1023, s.PrefillTokens); // the urgent chunk takes what the decode left
    }

    [Fact]
    public void KvShort_UrgentWaitingRequest_PreemptsTheLowestPriorityRunningSequence()
    {
        // 40 blocks of 16 tokens: two 320-token low-priority sequences fill it; the urgent one needs room.
        var engine = Engine(kvBlocks: 40);
        Submit(engine, Request("low-a", promptTokens: 304, outputTokens: 20, doc: 1));
        Submit(engine, Request("low-b", promptTokens: 304, outputTokens: 20, doc: 2));
        engine.Step();
        Assert.Equal(2, engine.RunningCount);
        Submit(engine, WithPriority(Request("urgent", promptTokens: 304, outputTokens: 2, doc: 3), 1));

        var s = engine.Step();

        Assert.True(s.Preempted >= 1);
        Assert.Contains(s.Events, e => e.RequestId == "urgent" && e.Kind == SequenceEventKind.FirstToken);
        var all = RunToCompletion(engine);
        Assert.Contains(all, e => e.Event.RequestId == "low-b" && e.Event.Kind == SequenceEventKind.Finished); // recomputed, not lost
        Assert.Contains(all, e => e.Event.RequestId == "low-a" && e.Event.Kind == SequenceEventKind.Finished);
    }

    [Fact]
    public void KvShort_EqualPriority_WaitsInsteadOfPreempting()
    {
        var engine = Engine(kvBlocks: 40);
        Submit(engine, Request("a", promptTokens: 304, outputTokens: 20, doc: 1));
        Submit(engine, Request("b", promptTokens: 304, outputTokens: 20, doc: 2));
        engine.Step();
        Submit(engine, Request("c", promptTokens: 304, outputTokens: 2, doc: 3));

        var s = engine.Step();

        Assert.Equal(0, s.Preempted);
        Assert.DoesNotContain(s.Events, e => e.RequestId == "c");
    }

    [Fact]
    public void RunningCapFull_UrgentRequestTakesTheSlotOfALowerPriorityOne()
    {
        var engine = Engine(maxRunning: 2);
        Submit(engine, Request("low-a", promptTokens: 64, outputTokens: 30, doc: 1));
        Submit(engine, Request("low-b", promptTokens: 64, outputTokens: 30, doc: 2));
        engine.Step();
        Submit(engine, WithPriority(Request("urgent", promptTokens: 64, outputTokens: 2, doc: 3), 1));

        var s = engine.Step();

        Assert.Equal(1, s.Preempted);
        Assert.Contains(s.Events, e => e.RequestId == "urgent" && e.Kind == SequenceEventKind.FirstToken);
        Assert.Equal(2, engine.RunningCount);
    }

    [Fact]
    public void UrgentTtft_UnderAFloodOfLongPrefills_StaysNearItsTtftAlone()
    {
        TimeSpan Alone()
        {
            var e = Engine(maxBatchTokens: 2048);
            Submit(e, WithPriority(Request("quiet", promptTokens: 1024, outputTokens: 2, doc: 99), 1));
            return FirstTokenAt(e, "quiet");
        }

        TimeSpan Flooded(int priority)
        {
            var e = Engine(maxBatchTokens: 2048, kvBlocks: 4096);
            for (int i = 0; i < 6; i++)
            {
                Submit(e, Request($"flood-{i}", promptTokens: 6000, outputTokens: 8, doc: i + 1));
            }

            e.Step(); // the flood is under way
            Submit(e, WithPriority(Request("quiet", promptTokens: 1024, outputTokens: 2, doc: 99), priority));
            return FirstTokenAt(e, "quiet");
        }

        var alone = Alone();
        Assert.True(Flooded(1) < alone * 1.25, $"urgent {Flooded(1)} vs alone {alone}");
        Assert.True(Flooded(0) > alone * 5, $"without priority the quiet request waits for the flood: {Flooded(0)} vs {alone}");
    }

    [Fact]
    public void AfterAnUrgentRequest_LowPrioritySteps_CarryAtMostTheLowPriorityPrefillTokens_UntilTheMemoryLapses()
    {
        var time = new FakeTimeProvider();
        var engine = Engine(maxBatchTokens: 8192, kvBlocks: 4096, lowPriorityPrefill: 2048, time: time);
        for (int i = 0; i < 4; i++)
        {
            Submit(engine, Request($"flood-{i}", promptTokens: 6000, outputTokens: 4, doc: i + 1));
        }

        Assert.Equal(8192, engine.Step().PrefillTokens); // nothing urgent seen: the whole budget

        Submit(engine, WithPriority(Request("quiet", promptTokens: 64, outputTokens: 1, doc: 99), 1));
        Assert.Contains(engine.Step().Events, e => e.RequestId == "quiet"); // the urgent one goes first (and alone)
        Assert.Equal(2048, engine.Step().PrefillTokens); // then the flood's prefills share 2,048 tokens a step, all chunks together
        Assert.Equal(2048, engine.Step().PrefillTokens);

        time.Advance(TimeSpan.FromSeconds(10)); // no urgent request for UrgentMemorySeconds
        var full = engine.Step();
        Assert.Equal(8192, full.PrefillTokens + full.DecodeTokens);
        Assert.True(full.PrefillTokens > 8000);
    }

    [Fact]
    public void WithoutPriorities_LowPriorityPrefillTokensChangesNothing()
    {
        var capped = Engine(maxBatchTokens: 8192, kvBlocks: 4096, lowPriorityPrefill: 512);
        var off = Engine(maxBatchTokens: 8192, kvBlocks: 4096, lowPriorityPrefill: 0);
        foreach (var e in new[] { capped, off })
        {
            for (int i = 0; i < 3; i++)
            {
                Submit(e, Request($"r{i}", promptTokens: 5000, outputTokens: 3, doc: i + 1));
            }
        }

        var a = RunToCompletion(capped).Select(x => (x.Event.RequestId, x.Event.Kind, x.Event.TokenIndex, x.At)).ToList();
        var b = RunToCompletion(off).Select(x => (x.Event.RequestId, x.Event.Kind, x.Event.TokenIndex, x.At)).ToList();
        Assert.Equal(b, a);
    }

    [Fact]
    public void SerialUrgentPrefill_UrgentPromptsQueuedTogether_GetTheirFirstTokensOneAfterAnother()
    {
        TimeSpan[] FirstTokens(bool serial)
        {
            var e = Engine(maxBatchTokens: 8192, kvBlocks: 4096, serial: serial);
            Submit(e, WithPriority(Request("u1", promptTokens: 2048, outputTokens: 2, doc: 1), 1));
            Submit(e, WithPriority(Request("u2", promptTokens: 2048, outputTokens: 2, doc: 2), 1));
            var at = new Dictionary<string, TimeSpan>();
            var t = TimeSpan.Zero;
            for (int i = 0; i < 100 && e.HasWork; i++)
            {
                var s = e.Step();
                t += s.Duration;
                foreach (var ev in s.Events.Where(ev => ev.Kind == SequenceEventKind.FirstToken))
                {
                    at[ev.RequestId] = t;
                }
            }

            return [at["u1"], at["u2"]];
        }

        var serial = FirstTokens(serial: true);
        var batched = FirstTokens(serial: false);
        Assert.Equal(batched[0], batched[1]);                 // batched: both wait for one 4,096-token step
        Assert.True(serial[0] < batched[0] * 0.6, $"{serial[0]} vs {batched[0]}"); // the first no longer waits for the second
        Assert.True(serial[1] < batched[1] * 1.1, $"{serial[1]} vs {batched[1]}"); // and the second loses little (one step's overhead)
    }
}
