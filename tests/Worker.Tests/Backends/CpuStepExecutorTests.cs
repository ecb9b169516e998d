using System.Diagnostics;
using Llm.Prompt.Hashing;
using Worker.Backends;
using Worker.Cpu;
using Worker.Engine;
using Worker.Tests.Engine;
using Xunit.Abstractions;

namespace Worker.Tests.Backends;

/// <summary>A seeded random Llama GGUF written once per test class (no download).</summary>
public sealed class TinyLlamaFixture : IDisposable
{
    public TinyLlamaFixture()
    {
        Dir = Directory.CreateTempSubdirectory("cpu-engine-tests").FullName;
        Path = System.IO.Path.Combine(Dir, "tiny.gguf");
        RandomLlamaGguf.Write(Path, new LlamaShape(Vocab: 300, Dim: 64, Layers: 2, Heads: 4, KvHeads: 2, Hidden: 160, MaxContext: 4096), seed: 7);
        Model = LlamaModel.Load(Path);
    }

    public string Dir { get; }

    public string Path { get; }

    public LlamaModel Model { get; }

    public void Dispose()
    {
        Model.Dispose();
        Directory.Delete(Dir, recursive: true);
    }
}

/// <summary>
/// The engine driving the real CPU forward pass: greedy tokens and logits of a prompt are the same (1e-3 relative) when
/// it runs cold, after a prefix-cache hit, in tiny prefill chunks, and under preemption/recompute in a tiny KV pool;
/// and a prefix hit makes the first token much cheaper.
/// </summary>
public sealed class CpuStepExecutorTests(TinyLlamaFixture tiny, ITestOutputHelper output) : IClassFixture<TinyLlamaFixture>
{
    private const int BlockSize = 16;

    [Fact]
    public void Cache_hits_and_chunked_prefill_reproduce_the_cold_tokens_and_logits()
    {
        var prompts = Enumerable.Range(0, 3).Select(i => TokenEngineTests.Prompt(seed: 40 + i, length: 70 + 13 * i)).ToArray();
        const int output = 12;

        // Cold reference: each prompt alone in a fresh engine.
        var cold = prompts.Select((p, i) => RunOne(NewEngine(kvBlocks: 64), "r" + i, p, output)).ToArray();

        // Prefix hit: the same prompts again in one engine after a first pass.
        var (warmEngine, warmExec) = NewEngine(kvBlocks: 128);
        for (int i = 0; i < prompts.Length; i++)
        {
            RunOne((warmEngine, warmExec), "first" + i, prompts[i], output);
        }

        for (int i = 0; i < prompts.Length; i++)
        {
            var hit = RunOne((warmEngine, warmExec), "r" + i, prompts[i], output);
            Assert.True(hit.Cached >= BlockSize * (prompts[i].Length / BlockSize - 1), $"prompt {i}: expected a prefix hit, got {hit.Cached}");
            AssertSame(cold[i], hit);
        }

        // Chunked prefill: 7-token steps, all prompts at once.
        var chunked = RunAll(NewEngine(kvBlocks: 128, maxBatchTokens: 7), prompts, output);
        for (int i = 0; i < prompts.Length; i++)
        {
            AssertSame(cold[i], chunked["r" + i]);
        }
    }

    [Fact]
    public void Preemption_recomputes_prompt_and_generated_tokens_to_the_cold_tokens_and_logits()
    {
        // Three short prompts with long outputs grow together in a pool that cannot hold them all (5 blocks each, 8 in all).
        var prompts = Enumerable.Range(0, 3).Select(i => TokenEngineTests.Prompt(seed: 50 + i, length: 20 + 5 * i)).ToArray();
        const int output = 40;
        var cold = prompts.Select((p, i) => RunOne(NewEngine(kvBlocks: 64), "r" + i, p, output)).ToArray();
        var (tightEngine, tightExec) = NewEngine(kvBlocks: 8, maxBatchTokens: 64);
        var preempted = RunAll((tightEngine, tightExec), prompts, output);
        Assert.True(tightEngine.GetState().PreemptionsTotal > 0, "the tiny pool must force preemptions");
        for (int i = 0; i < prompts.Length; i++)
        {
            AssertSame(cold[i], preempted["r" + i]);
        }
    }

    [Fact]
    public void Context_demoted_to_the_host_tier_and_reloaded_reproduces_the_cold_tokens_and_logits()
    {
        // 16 HBM blocks (256 tokens) and a host tier of 64: each prompt fills 10 blocks, so running B and C after A
        // evicts A's blocks from the pool; their K/V is copied to host memory and copied back when A comes again.
        var prompts = Enumerable.Range(0, 3).Select(i => TokenEngineTests.Prompt(seed: 90 + i, length: 160)).ToArray();
        const int tokens = 8;
        var cold = RunOne(NewEngine(kvBlocks: 64), "a", prompts[0], tokens);
        var (engine, exec) = NewEngine(kvBlocks: 16, hostKvBlocks: 64);
        RunOne((engine, exec), "a0", prompts[0], tokens);
        RunOne((engine, exec), "b", prompts[1], tokens);
        RunOne((engine, exec), "c", prompts[2], tokens);
        var store = exec.HostCopier!.Store;
        long copiedIn = store.BlocksCopiedIn;

        var reloaded = RunOne((engine, exec), "a", prompts[0], tokens);

        var state = engine.GetState();
        Assert.Equal(BlockSize * ((prompts[0].Length - 1) / BlockSize), reloaded.Cached); // all but the last token's block
        Assert.True(state.PrefixCacheHostHitTokens > 0, "A's prefix must come back from the host tier");
        Assert.Equal(state.PrefixCacheHostHitTokens / BlockSize, store.BlocksCopiedIn - copiedIn);
        Assert.True(store.BlocksCopiedOut > 0 && store.CopyOutSeconds > 0 && store.CopyInSeconds > 0);
        AssertSame(cold, reloaded);
        output.WriteLine($"host tier: {store.BlocksCopiedOut} blocks out in {store.CopyOutSeconds * 1e3:F2} ms, {store.BlocksCopiedIn} in in {store.CopyInSeconds * 1e3:F2} ms ({store.FloatsPerBlock * 4} bytes a block)");
    }

    [Fact]
    public void Temperature_sampling_depends_only_on_seed_and_position_so_preemption_reproduces_it()
    {
        var prompts = Enumerable.Range(0, 3).Select(i => TokenEngineTests.Prompt(seed: 80 + i, length: 20 + 5 * i)).ToArray();
        const int output = 40;
        var cold = prompts.Select((p, i) => RunOne(NewEngine(kvBlocks: 64), "r" + i, p, output, temperature: 1)).ToArray();
        var greedy = RunOne(NewEngine(kvBlocks: 64), "r0", prompts[0], output);
        Assert.NotEqual(greedy.Tokens, cold[0].Tokens); // T = 1 over a random model's flat logits really samples
        var (tightEngine, tightExec) = NewEngine(kvBlocks: 8, maxBatchTokens: 64);
        var preempted = RunAll((tightEngine, tightExec), prompts, output, temperature: 1);
        Assert.True(tightEngine.GetState().PreemptionsTotal > 0);
        for (int i = 0; i < prompts.Length; i++)
        {
            AssertSame(cold[i], preempted["r" + i]);
        }
    }

    [Fact]
    public void Sample_follows_the_softmax_and_tends_to_argmax_at_low_temperature()
    {
        int ones = 0;
        for (int pos = 0; pos < 4000; pos++)
        {
            ones += CpuStepExecutor.Sample([0f, MathF.Log(3f)], 1f, seed: 9, position: pos);
        }

        Assert.InRange(ones, 3000 - 150, 3000 + 150); // P(1) = 0.75; 5.5 sigma either way
        Assert.Equal(2, CpuStepExecutor.Sample([1f, 2f, 2.5f, 0f], 0.01f, seed: 1, position: 0));
        Assert.Equal(CpuStepExecutor.Sample([1f, 2f, 3f], 1f, 5, 17), CpuStepExecutor.Sample([1f, 2f, 3f], 1f, 5, 17));
    }

    [Fact]
    public void Greedy_sampling_is_the_argmax_of_the_logits_row()
    {
        var (engine, exec) = NewEngine(kvBlocks: 32);
        var run = RunOne((engine, exec), "a", TokenEngineTests.Prompt(seed: 60, length: 20), 4);
        for (int t = 0; t < run.Tokens.Count; t++)
        {
            Assert.Equal(CpuStepExecutor.Argmax(run.Logits[t]), run.Tokens[t]);
        }

        Assert.Equal(1, CpuStepExecutor.Argmax([0f, 3f, float.NaN, 3f]));
    }

    [Fact]
    public void Prefix_hit_reaches_the_first_token_much_sooner_than_a_cold_prefill()
    {
        var prompt = TokenEngineTests.Prompt(seed: 70, length: 1000);
        var (engine, exec) = NewEngine(kvBlocks: 512);
        RunOne((engine, exec), "warmup", TokenEngineTests.Prompt(seed: 71, length: 64), 1); // JIT + first-touch out of the way
        var coldTtft = TimeToFirstToken(engine, exec, "cold", prompt);
        var warmTtft = TimeToFirstToken(engine, exec, "warm", prompt);
        double ratio = coldTtft.TotalSeconds / warmTtft.TotalSeconds;
        output.WriteLine($"cold TTFT {coldTtft.TotalMilliseconds:F1} ms, warm TTFT {warmTtft.TotalMilliseconds:F1} ms, ratio {ratio:F1}x");
        Assert.True(ratio >= 5, $"warm first token only {ratio:F1}x sooner (cold {coldTtft.TotalMilliseconds:F1} ms, warm {warmTtft.TotalMilliseconds:F1} ms)");
    }

    private sealed record Run(List<int> Tokens, List<float[]> Logits, int Cached);

    private (LlmEngine Engine, CpuStepExecutor Exec) NewEngine(int kvBlocks, int maxBatchTokens = 8192, int hostKvBlocks = 0)
    {
        var exec = new CpuStepExecutor(tiny.Model, kvBlocks, BlockSize, maxBatchTokens, threads: 2);
        var engine = new LlmEngine(new EngineOptions
        {
            Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B),
            KvBlocks = kvBlocks,
            HostKvBlocks = hostKvBlocks,
            BlockSize = BlockSize,
            MaxBatchTokens = maxBatchTokens,
            MaxModelLength = 4096,
        }, new FakeTimeProvider(), exec, hostKvBlocks > 0 ? exec.HostCopier : null);
        return (engine, exec);
    }

    private static EngineRequest Request(string id, int[] prompt, int output, float temperature = 0) => new()
    {
        Id = id,
        Temperature = temperature,
        SamplingSeed = 42,
        PromptTokens = prompt.Length,
        PromptTokenIds = prompt,
        OutputTokens = output,
        BlockHashes = BlockHasher.ComputeChain(prompt, 0, BlockSize),
    };

    private static Run RunOne((LlmEngine Engine, CpuStepExecutor Exec) e, string id, int[] prompt, int output, float temperature = 0) =>
        RunAll(e, [prompt], output, id, temperature)[id];

    private static Dictionary<string, Run> RunAll((LlmEngine Engine, CpuStepExecutor Exec) e, int[][] prompts, int output, string? onlyId = null, float temperature = 0)
    {
        var runs = new Dictionary<string, Run>();
        e.Exec.OnLogits = (id, _, logits) => runs[id].Logits.Add(logits.ToArray());
        for (int i = 0; i < prompts.Length; i++)
        {
            string id = onlyId ?? "r" + i;
            runs[id] = new Run([], [], 0);
            Assert.True(e.Engine.Submit(Request(id, prompts[i], output, temperature), out var error), error);
        }

        for (int s = 0; s < 10_000 && e.Engine.HasWork; s++)
        {
            foreach (var ev in e.Engine.Step().Events)
            {
                var r = runs[ev.RequestId];
                if (ev.Kind is SequenceEventKind.FirstToken or SequenceEventKind.Token)
                {
                    r.Tokens.Add(ev.TokenId);
                }

                runs[ev.RequestId] = r with { Cached = ev.CachedTokens };
            }
        }

        Assert.False(e.Engine.HasWork);
        e.Exec.OnLogits = null;
        return runs;
    }

    /// <summary>Same tokens and, row by row (one per sampled token), logits within 1e-3 of the row's largest magnitude.</summary>
    private static void AssertSame(Run expected, Run actual)
    {
        Assert.Equal(expected.Tokens, actual.Tokens);
        Assert.Equal(expected.Logits.Count, actual.Logits.Count);
        Assert.Equal(expected.Tokens.Count, expected.Logits.Count);
        for (int t = 0; t < expected.Logits.Count; t++)
        {
            var a = expected.Logits[t];
            var b = actual.Logits[t];
            float scale = Math.Max(1e-6f, a.Max(MathF.Abs));
            float worst = a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();
            Assert.True(worst <= 1e-3f * scale, $"token {t}: logits differ by {worst} (scale {scale})");
        }
    }

    private static TimeSpan TimeToFirstToken(LlmEngine engine, CpuStepExecutor exec, string id, int[] prompt)
    {
        Assert.True(engine.Submit(Request(id, prompt, 1), out var error), error);
        var sw = Stopwatch.StartNew();
        var executed = TimeSpan.Zero;
        for (int s = 0; s < 1000 && engine.HasWork; s++)
        {
            var step = engine.Step();
            executed += step.Duration;
            if (step.Events.Any(e => e.Kind == SequenceEventKind.FirstToken))
            {
                break;
            }
        }

        Assert.True(sw.Elapsed >= executed);
        while (engine.HasWork)
        {
            engine.Step();
        }

        return executed;
    }
}
