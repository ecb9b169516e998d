using Llm.Prompt.Hashing;

namespace Llm.Prompt.Tests.Hashing;

public class BlockHasherTests
{
    private static int[] Tokens(int n, int offset = 0) => Enumerable.Range(offset, n).ToArray();

    // Published vector: block 0 of tokens 0..15, salt 0. The bytes are le64(Root) ‖ le64(0) ‖ le32(0..15);
    // `xxhsum -H1` over that 80-byte file prints cb7153b125ed32f6.
    [Fact]
    public void FirstBlock_MatchesPublishedVector()
    {
        Assert.Equal(0xCB7153B125ED32F6UL, BlockHasher.HashBlock(BlockHasher.Root, 0, Tokens(16)));
        Assert.Equal(0xCB7153B125ED32F6UL, BlockHasher.ComputeChain(Tokens(16), 0)[0]);
    }

    [Fact]
    public void ComputeChain_OnlyFullBlocksAreHashed()
    {
        Assert.Equal(2, BlockHasher.ComputeChain(Tokens(47), 0).Length);
        Assert.Empty(BlockHasher.ComputeChain(Tokens(15), 0));
    }

    [Fact]
    public void ComputeChain_BlockHashCoversWholePrefix()
    {
        var a = Tokens(64);
        var b = Tokens(64);
        b[3] = 999; // differs in block 0 only
        var ha = BlockHasher.ComputeChain(a, 0);
        var hb = BlockHasher.ComputeChain(b, 0);
        for (int i = 0; i < ha.Length; i++)
        {
            Assert.NotEqual(ha[i], hb[i]); // block 3 has equal tokens but a different parent
        }
    }

    [Fact]
    public void ComputeChain_SharedPrefixSharesHashesThenDiverges()
    {
        var a = Tokens(64);
        var b = Tokens(64);
        b[40] = -1; // block 2
        var ha = BlockHasher.ComputeChain(a, 7);
        var hb = BlockHasher.ComputeChain(b, 7);
        Assert.Equal(ha[0], hb[0]);
        Assert.Equal(ha[1], hb[1]);
        Assert.NotEqual(ha[2], hb[2]);
        Assert.NotEqual(ha[3], hb[3]);
    }

    [Fact]
    public void ComputeChain_DifferentSaltsNeverShareBlocks()
    {
        var t = Tokens(128);
        var h1 = BlockHasher.ComputeChain(t, BlockHasher.SaltOf("tenant-a"));
        var h2 = BlockHasher.ComputeChain(t, BlockHasher.SaltOf("tenant-b"));
        Assert.Empty(h1.Intersect(h2));
    }

    [Fact]
    public void SaltOf_IsStableAndEmptyMeansUnsalted()
    {
        Assert.Equal(0UL, BlockHasher.SaltOf(null));
        Assert.Equal(0UL, BlockHasher.SaltOf(""));
        Assert.Equal(BlockHasher.SaltOf("acme"), BlockHasher.SaltOf("acme"));
    }

    [Fact]
    public void ComputeChain_SpanOverloadIsAllocationFree()
    {
        var tokens = Tokens(100_000);
        Span<ulong> dest = new ulong[tokens.Length / 16];
        BlockHasher.ComputeChain(tokens, 1, 16, dest); // warm up
        long before = GC.GetAllocatedBytesForCurrentThread();
        BlockHasher.ComputeChain(tokens, 1, 16, dest);
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void HashSynthetic_CoarseTraceBlocksMapConsistently()
    {
        ulong p1 = BlockHasher.HashSynthetic(BlockHasher.Root, 0, 42, 0);
        ulong p2 = BlockHasher.HashSynthetic(BlockHasher.Root, 0, 42, 0);
        Assert.Equal(p1, p2);
        Assert.NotEqual(p1, BlockHasher.HashSynthetic(BlockHasher.Root, 0, 42, 1));
        Assert.NotEqual(p1, BlockHasher.HashSynthetic(BlockHasher.Root, 0, 43, 0));
    }
}
