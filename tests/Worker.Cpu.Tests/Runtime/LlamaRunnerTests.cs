using Worker.Cpu.Tests.Model;

namespace Worker.Cpu.Tests.Runtime;

public sealed class LlamaRunnerTests
{
    private const int BlockSize = 4;
    private const float Tolerance = 1e-3f;

    private static (LlamaRunner Runner, KvPool Pool, BlockAllocator Blocks) Start(LlamaModel model, int threads = 1, CpuIsa? isa = null, int maxBatch = 64, int blocks = 256)
    {
        var pool = new KvPool(model.Config, blocks, BlockSize);
        return (new LlamaRunner(model, pool, maxBatch, threads, isa ?? CpuIsas.Best), pool, new BlockAllocator(blocks, seed: 3));
    }

    public static TheoryData<GgufTensorType, float> TypesAndReferenceTolerance => new()
    {
        { GgufTensorType.F32, Tolerance },
        { GgufTensorType.F16, Tolerance },
        // Q8_0 weights run against int8-quantized activations (as llama.cpp does); the reference uses f32 activations.
        { GgufTensorType.Q8_0, 3e-2f },
    };

    [Theory]
    [MemberData(nameof(TypesAndReferenceTolerance))]
    public void Forward_MatchesDenseReferenceWithoutCache_EveryIsa(GgufTensorType type, float tolerance)
    {
        var path = TestModels.Path(TestModels.Tiny, type);
        using var model = LlamaModel.Load(path);
        var reference = new ReferenceLlama(path, model.Config);
        var prompt = TestModels.Prompt(23, seed: 1, model.Config.Vocab);
        foreach (var isa in CpuIsas.Supported())
        {
            var (runner, _, blocks) = Start(model, isa: isa);
            using (runner)
            {
                var seq = new Sequence(blocks, BlockSize);
                var (first, generated) = Sequence.Run(runner, seq, prompt, [prompt.Length], decode: 4);
                Assert.True(TestModels.RelativeError(first, reference.LastLogits(prompt)) < tolerance, $"{isa} prompt logits");
                // Each decoded token's logits against a full recompute of the sequence so far.
                var full = prompt.Concat(generated).ToArray();
                Assert.True(TestModels.RelativeError(LogitsAfter(runner, blocks, full), reference.LastLogits(full)) < tolerance, $"{isa} decode logits");
            }
        }
    }

    [Fact]
    public void Forward_UntiedOutput_MatchesDenseReference()
    {
        var path = TestModels.Path(TestModels.TinyUntied);
        using var model = LlamaModel.Load(path);
        var (runner, _, blocks) = Start(model);
        using var _ = runner;
        var prompt = TestModels.Prompt(9, seed: 2, model.Config.Vocab);
        Assert.True(TestModels.RelativeError(LogitsAfter(runner, blocks, prompt), new ReferenceLlama(path, model.Config).LastLogits(prompt)) < Tolerance);
    }

    [Theory]
    [InlineData(GgufTensorType.F32)]
    [InlineData(GgufTensorType.Q8_0)]
    public void ChunkedPrefill_GivesSameLogitsAndGreedyTokensAsOneFullPromptStep(GgufTensorType type)
    {
        using var model = TestModels.Load(TestModels.Tiny, type);
        var (runner, _, blocks) = Start(model);
        using var _ = runner;
        var prompt = TestModels.Prompt(41, seed: 5, model.Config.Vocab);
        var full = Sequence.Run(runner, new Sequence(blocks, BlockSize), prompt, [prompt.Length], decode: 12);
        foreach (var chunks in new[] { new[] { 7 }, [1], [5, 13, 3], [16] })
        {
            var chunked = Sequence.Run(runner, new Sequence(blocks, BlockSize), prompt, chunks, decode: 12);
            Assert.True(TestModels.RelativeError(chunked.FirstLogits, full.FirstLogits) < Tolerance, $"chunks {string.Join(",", chunks)}");
            Assert.Equal(full.Generated, chunked.Generated);
        }
    }

    [Fact]
    public void PrefixCacheHit_SharedBlocksPlusSuffix_GivesSameLogitsAsUncachedRun()
    {
        using var model = TestModels.Load(TestModels.Tiny);
        var (runner, _, blocks) = Start(model);
        using var _ = runner;
        var prompt = TestModels.Prompt(30, seed: 9, model.Config.Vocab);
        var first = new Sequence(blocks, BlockSize);
        var uncached = Sequence.Run(runner, first, prompt, [prompt.Length], decode: 6);

        // A second request with the same prompt: its first 6 full blocks (24 tokens) are the first request's blocks
        // (a prefix-cache hit); only the last 6 prompt tokens are computed, into fresh blocks.
        var second = new Sequence(blocks, BlockSize);
        second.Table.AddRange(first.Table.Take(6));
        second.Computed = 0;
        second.Tokens.AddRange(prompt[..24]);
        second.Computed = 24;
        var cached = Sequence.Run(runner, second, prompt[24..], [prompt.Length], decode: 6);
        Assert.True(TestModels.RelativeError(cached.FirstLogits, uncached.FirstLogits) < Tolerance);
        Assert.Equal(uncached.Generated, cached.Generated);
    }

    [Fact]
    public void PreemptionRecompute_IntoOtherBlocks_ContinuesWithTheSameGreedyTokens()
    {
        using var model = TestModels.Load(TestModels.Tiny, GgufTensorType.Q8_0);
        var (runner, _, blocks) = Start(model);
        using var _ = runner;
        var prompt = TestModels.Prompt(21, seed: 17, model.Config.Vocab);
        var uninterrupted = Sequence.Run(runner, new Sequence(blocks, BlockSize), prompt, [prompt.Length], decode: 10);

        // Preempted after 4 decoded tokens: its blocks are gone, so prompt + those 4 tokens are recomputed as one
        // prefill (in chunks of 9) into fresh blocks, then decoding resumes.
        var before = Sequence.Run(runner, new Sequence(blocks, BlockSize), prompt, [prompt.Length], decode: 4);
        var recomputed = new Sequence(blocks, BlockSize);
        var resumed = Sequence.Run(runner, recomputed, [.. prompt, .. before.Generated], [9], decode: 6);
        Assert.Equal(uninterrupted.Generated, before.Generated.Concat(resumed.Generated));
    }

    [Fact]
    public void BatchOfThreeSequences_MixedPrefillAndDecode_EqualsEachRunAlone()
    {
        using var model = TestModels.Load(TestModels.Tiny, GgufTensorType.Q8_0);
        var (runner, _, blocks) = Start(model, threads: 3);
        using var _ = runner;
        int vocab = model.Config.Vocab;
        var prompts = new[] { TestModels.Prompt(19, 11, vocab), TestModels.Prompt(5, 12, vocab), TestModels.Prompt(33, 13, vocab) };
        var alone = prompts.Select(p => Sequence.Run(runner, new Sequence(blocks, BlockSize), p, [8], decode: 7)).ToArray();

        // Continuous batching: every step carries each unfinished sequence's next prefill chunk (8 tokens) or its
        // decode token, so prefill of one sequence shares steps with decode of another.
        var seqs = prompts.Select(p => { var s = new Sequence(blocks, BlockSize); s.Tokens.AddRange(p); return s; }).ToArray();
        var generated = prompts.Select(_ => new List<int>()).ToArray();
        var firstLogits = new float[3][];
        var logits = new float[3 * vocab];
        while (generated.Any(g => g.Count < 7))
        {
            var active = Enumerable.Range(0, 3).Where(i => generated[i].Count < 7).ToArray();
            var batch = active.Select(i =>
            {
                var s = seqs[i];
                int n = s.Computed < prompts[i].Length ? Math.Min(8, prompts[i].Length - s.Computed) : 1;
                return s.Chunk(n, wantLogits: s.Computed + n >= prompts[i].Length);
            }).ToArray();
            runner.Forward(batch, logits);
            int row = 0;
            for (int k = 0; k < active.Length; k++)
            {
                int i = active[k];
                seqs[i].Computed += batch[k].Tokens.Length;
                if (!batch[k].WantLogits) continue;
                var rowLogits = logits.AsSpan(row++ * vocab, vocab);
                firstLogits[i] ??= rowLogits.ToArray();
                int next = TestModels.ArgMax(rowLogits);
                generated[i].Add(next);
                seqs[i].Tokens.Add(next);
            }
        }
        for (int i = 0; i < 3; i++)
        {
            Assert.True(TestModels.RelativeError(firstLogits[i], alone[i].FirstLogits) < Tolerance, $"sequence {i}");
            Assert.Equal(alone[i].Generated, generated[i]);
        }
    }

    [Fact]
    public void ThreadCount_DoesNotChangeResults()
    {
        using var model = TestModels.Load(TestModels.Tiny, GgufTensorType.F16);
        var prompt = TestModels.Prompt(37, seed: 4, model.Config.Vocab);
        var results = new[] { 1, 2, 4 }.Select(threads =>
        {
            var (runner, _, blocks) = Start(model, threads);
            using var _ = runner;
            return Sequence.Run(runner, new Sequence(blocks, BlockSize), prompt, [10], decode: 5);
        }).ToArray();
        foreach (var r in results[1..])
        {
            Assert.Equal(results[0].FirstLogits, r.FirstLogits);
            Assert.Equal(results[0].Generated, r.Generated);
        }
    }

    [Fact]
    public void Forward_AfterWarmUp_AllocatesNothingOnTheCallingThread()
    {
        using var model = TestModels.Load(TestModels.Tiny, GgufTensorType.Q8_0);
        var (runner, _, blocks) = Start(model, threads: 1);
        using var _ = runner;
        var a = new Sequence(blocks, BlockSize);
        var b = new Sequence(blocks, BlockSize);
        a.Tokens.AddRange(TestModels.Prompt(20, 1, model.Config.Vocab));
        b.Tokens.AddRange(TestModels.Prompt(20, 2, model.Config.Vocab));
        SeqChunk[] batch = [a.Chunk(12), b.Chunk(1)];
        var logits = new float[2 * model.Config.Vocab];
        runner.Forward(batch, logits);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 3; i++) runner.Forward(batch, logits);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Forward_RejectsBadBatchesWithClearErrors()
    {
        using var model = TestModels.Load(TestModels.Tiny);
        var (runner, pool, _) = Start(model, maxBatch: 8);
        using var _ = runner;
        var logits = new float[model.Config.Vocab];
        void Bad(SeqChunk c, string expected) =>
            Assert.Contains(expected, Assert.Throws<ArgumentException>(() => runner.Forward([c], logits)).Message);
        Bad(new SeqChunk(new int[9], 0, new int[3], true), "more than 8 tokens");
        Bad(new SeqChunk(new int[5], 0, new int[1], true), "block table has 1 blocks");
        Bad(new SeqChunk(new int[2], 0, new[] { pool.NumBlocks }, true), "outside the pool");
        Bad(new SeqChunk(new[] { model.Config.Vocab }, 0, new int[1], true), "outside the vocabulary");
        Bad(new SeqChunk(new int[1], model.Config.MaxContext, new int[model.Config.MaxContext / BlockSize + 1], true), "outside the context");
        Assert.Throws<ArgumentException>(() => runner.Forward([new SeqChunk(new int[1], 0, new int[1], true)], new float[3]));
    }

    /// <summary>Logits after running <paramref name="tokens"/> as one prompt in a fresh sequence.</summary>
    private static float[] LogitsAfter(LlamaRunner runner, BlockAllocator blocks, int[] tokens) =>
        Sequence.Run(runner, new Sequence(blocks, BlockSize), tokens, [tokens.Length], decode: 0).FirstLogits;
}
