namespace Worker.Cpu.Tests.Runtime;

/// <summary>The CPU backend's host tier: K/V blocks copied out of the pool, the pool reused, the blocks copied back.</summary>
public sealed class KvHostStoreTests
{
    private const int BlockSize = 4;
    private const float Tolerance = 1e-3f;

    [Theory]
    [InlineData(GgufTensorType.F32)]
    [InlineData(GgufTensorType.Q8_0)]
    public void ContextReloadedFromHostIntoOtherBlocks_GivesTheSameLogitsAndGreedyTokensAsAnUncachedRun(GgufTensorType type)
    {
        using var model = TestModels.Load(TestModels.Tiny, type);
        var pool = new KvPool(model.Config, 64, BlockSize);
        using var runner = new LlamaRunner(model, pool, 64, 1);
        var blocks = new BlockAllocator(64, seed: 5);
        var prompt = TestModels.Prompt(30, seed: 21, model.Config.Vocab);
        var uncached = Sequence.Run(runner, new Sequence(blocks, BlockSize), prompt, [prompt.Length], decode: 8);

        // A first turn computes the 6 full blocks of the shared prefix (24 tokens); they are written to the host store
        // (demotion) and their pool blocks are then taken by another sequence, which overwrites their K/V.
        var first = new Sequence(blocks, BlockSize);
        Sequence.Run(runner, first, prompt[..24], [24], decode: 0);
        var store = new KvHostStore(pool);
        var hashes = Enumerable.Range(0, 6).Select(i => 1000UL + (ulong)i).ToArray();
        for (int i = 0; i < 6; i++)
        {
            store.CopyOut(first.Table[i], hashes[i]);
        }

        var other = new Sequence(blocks, BlockSize);
        other.Table.AddRange(first.Table.Take(6));
        Sequence.Run(runner, other, TestModels.Prompt(24, seed: 99, model.Config.Vocab), [24], decode: 0);

        // The next turn reloads the prefix from host into fresh blocks and computes only its last 6 prompt tokens.
        var reloaded = new Sequence(blocks, BlockSize);
        foreach (ulong h in hashes)
        {
            int b = blocks.Take();
            Assert.True(store.CopyIn(h, b));
            reloaded.Table.Add(b);
        }

        reloaded.Tokens.AddRange(prompt[..24]);
        reloaded.Computed = 24;
        var fromHost = Sequence.Run(runner, reloaded, prompt[24..], [prompt.Length], decode: 8);

        Assert.True(TestModels.RelativeError(fromHost.FirstLogits, uncached.FirstLogits) < Tolerance);
        Assert.Equal(uncached.Generated, fromHost.Generated);
        Assert.Equal((6L, 6L), (store.BlocksCopiedOut, store.BlocksCopiedIn));
        Assert.True(store.CopyOutSeconds > 0 && store.CopyInSeconds > 0);
        Assert.Equal(6 * store.FloatsPerBlock * sizeof(float), store.Bytes);

        // The same turn over the overwritten blocks (no reload) does not match: the comparison can fail.
        var stale = new Sequence(blocks, BlockSize);
        stale.Table.AddRange(first.Table.Take(6));
        stale.Tokens.AddRange(prompt[..24]);
        stale.Computed = 24;
        var wrong = Sequence.Run(runner, stale, prompt[24..], [prompt.Length], decode: 0);
        Assert.True(TestModels.RelativeError(wrong.FirstLogits, uncached.FirstLogits) > Tolerance);
    }

    [Fact]
    public void ForgottenBlocks_AreGone_AndTheirBuffersReused()
    {
        using var model = TestModels.Load(TestModels.Tiny);
        var pool = new KvPool(model.Config, 8, BlockSize);
        var store = new KvHostStore(pool);
        store.CopyOut(0, 1);
        store.CopyOut(1, 2);
        store.Forget(1);

        Assert.False(store.Contains(1));
        Assert.False(store.CopyIn(1, 3));
        Assert.True(store.CopyIn(2, 3));
        store.CopyOut(2, 3);
        Assert.Equal(2, store.Count);
        store.Clear();
        Assert.Equal(0, store.Count);
    }
}
