using Llm.Prompt.Hashing;
using Simulator.Traces;
using Simulator.Workload;

namespace Simulator.Tests.Workload;

public class HashMapperTests
{
    [Fact]
    public void Map_CoarseBlocks_SplitIntoEngineBlocksAndSkipPartialTail()
    {
        // 512-token trace blocks onto 16-token engine blocks: 1000 tokens → 62 full engine blocks (32 + 30).
        var h = HashMapper.Map([10, 11], 1000, 512, salt: 0, engineBlockSize: 16);
        Assert.Equal(62, h.Length);
        Assert.Equal(h.Length, h.Distinct().Count());
    }

    [Fact]
    public void Map_SharedPrefixIds_ShareHashesExactlyUpToDivergence()
    {
        var a = HashMapper.Map([1, 2, 3], 192, 64, 0, 16);
        var b = HashMapper.Map([1, 2, 9], 192, 64, 0, 16);
        Assert.Equal(12, a.Length);
        Assert.Equal(a[..8], b[..8]);
        Assert.All(Enumerable.Range(8, 4), i => Assert.NotEqual(a[i], b[i]));
    }

    [Fact]
    public void Map_SameIdsAtDifferentPosition_DoNotMatch()
    {
        // Chained: id 2 after id 1 differs from id 2 at the start.
        var a = HashMapper.Map([1, 2], 128, 64, 0, 64);
        var b = HashMapper.Map([2], 64, 64, 0, 64);
        Assert.NotEqual(a[1], b[0]);
    }

    [Fact]
    public void Map_DifferentTenantSalts_NeverShare()
    {
        var a = HashMapper.Map([1, 2], 128, 64, BlockHasher.SaltOf("org-a"), 16);
        var b = HashMapper.Map([1, 2], 128, 64, BlockHasher.SaltOf("org-b"), 16);
        Assert.Empty(a.Intersect(b));
    }

    [Fact]
    public void Map_FineTraceBlocks_FoldIntoCoarserEngineBlocks()
    {
        var a = HashMapper.Map([1, 2, 3, 4, 5], 80, 16, 0, 32);
        var b = HashMapper.Map([1, 2, 3, 4, 6], 80, 16, 0, 32);
        Assert.Equal(2, a.Length); // 80 tokens → 2 full 32-token blocks
        Assert.Equal(a, b);        // ids 5/6 fall in the partial tail
        var c = HashMapper.Map([1, 2, 3, 7], 64, 16, 0, 32);
        Assert.Equal(a[0], c[0]);
        Assert.NotEqual(a[1], c[1]);
    }

    [Fact]
    public void Map_MatchesTraceRequestOverload()
    {
        var r = new TraceRequest { In = 600, BlockSize = 512, HashIds = HashIds.Of([5, 6]) };
        Assert.Equal(HashMapper.Map([5, 6], 600, 512, 7, 16), HashMapper.Map(r, 7, 16));
    }

    [Fact]
    public void Compatible_RequiresDivisibleSizes()
    {
        Assert.True(HashMapper.Compatible(512, 16));
        Assert.True(HashMapper.Compatible(16, 64));
        Assert.False(HashMapper.Compatible(100, 16));
    }
}
