using Llm.Prompt.Hashing;
using Worker.Engine;

namespace Worker.Tests.Engine;

internal static class EngineTestKit
{
    /// <summary>Chained hashes of <paramref name="blocks"/> synthetic blocks of document <paramref name="doc"/> (a prefix of the same doc shares hashes).</summary>
    public static ulong[] Chain(int doc, int blocks, ulong parent = BlockHasher.Root)
    {
        var result = new ulong[blocks];
        for (int i = 0; i < blocks; i++)
        {
            parent = BlockHasher.HashSynthetic(parent, 0, doc, i);
            result[i] = parent;
        }

        return result;
    }

    public static EngineRequest Request(string id, int promptTokens, int outputTokens, int doc = -1, int blockSize = 16, string? session = null, int retentionTtlMs = 0) => new()
    {
        Id = id,
        PromptTokens = promptTokens,
        OutputTokens = outputTokens,
        BlockHashes = Chain(doc < 0 ? id.GetHashCode(StringComparison.Ordinal) : doc, promptTokens / blockSize),
        SessionId = session,
        RetentionTtlMs = retentionTtlMs,
    };

    public static LlmEngine NewEngine(int kvBlocks = 1024, int maxBatchTokens = 8192, int maxRunning = 256, double maxPinned = 0.5, FakeTimeProvider? time = null, string profile = ModelProfiles.H100Llama3_8B, int maxModelLength = 131072, int longPrefill = 0) =>
        new(new EngineOptions
        {
            Profile = ModelProfiles.Get(profile),
            KvBlocks = kvBlocks,
            MaxBatchTokens = maxBatchTokens,
            MaxRunningSequences = maxRunning,
            MaxPinnedFraction = maxPinned,
            MaxModelLength = maxModelLength,
            LongPrefillTokenThreshold = longPrefill,
        }, time ?? new FakeTimeProvider());

    public static void Submit(LlmEngine engine, EngineRequest r)
    {
        Assert.True(engine.Submit(r, out var error), error);
    }

    /// <summary>Steps until idle (bounded); returns every event and the modelled time at which each was delivered.</summary>
    public static List<(SequenceEvent Event, TimeSpan At, StepResult Step)> RunToCompletion(LlmEngine engine, int maxSteps = 100_000)
    {
        var all = new List<(SequenceEvent, TimeSpan, StepResult)>();
        var clock = TimeSpan.Zero;
        for (int i = 0; i < maxSteps && engine.HasWork; i++)
        {
            var step = engine.Step();
            clock += step.Duration;
            foreach (var e in step.Events)
            {
                all.Add((e, clock, step));
            }
        }

        Assert.False(engine.HasWork, "engine did not drain within the step bound");
        return all;
    }
}
