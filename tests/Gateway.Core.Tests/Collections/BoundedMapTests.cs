using Gateway.Core.Collections;

namespace Gateway.Core.Tests.Collections;

public class BoundedMapTests
{
    [Fact]
    public void Set_BeyondCapacity_EvictsTheLeastRecentlyWrittenAndReportsIt()
    {
        var evicted = new List<(string, int)>();
        var map = new BoundedMap<string, int>(3, evicted: (k, v) => evicted.Add((k, v)));
        map.Set("a", 1);
        map.Set("b", 2);
        map.Set("c", 3);
        map.Set("a", 10);                     // rewrite: "a" becomes the newest
        map.Set("d", 4);                      // over capacity: "b" (oldest write) goes

        Assert.Equal([("b", 2)], evicted);
        Assert.Equal(3, map.Count);
        Assert.True(map.TryGetValue("a", out int a));
        Assert.Equal(10, a);
        Assert.False(map.ContainsKey("b"));
        Assert.Equal(1, map.Evictions);
    }

    [Fact]
    public void Weight_BoundsTheTotalNotTheCount()
    {
        var map = new BoundedMap<int, ulong[]>(100, weight: h => h.Length);
        map.Set(1, new ulong[60]);
        map.Set(2, new ulong[30]);
        Assert.Equal(90, map.Weight);
        map.Set(3, new ulong[20]);            // 110 > 100: the 60 goes

        Assert.Equal([2, 3], new[] { 1, 2, 3 }.Where(map.ContainsKey));
        Assert.Equal(50, map.Weight);
        Assert.True(map.Remove(2, out var removed));
        Assert.Equal(30, removed.Length);
        Assert.Equal(20, map.Weight);
        Assert.False(map.Remove(2));
    }

    [Fact]
    public void ManyRewritesOfFewKeys_StayBoundedAndKeepWriteOrder()
    {
        var map = new BoundedMap<int, int>(4);
        for (int i = 0; i < 100_000; i++)
        {
            map.Set(i % 5, i);                // five keys cycling through four slots
        }

        Assert.Equal(4, map.Count);
        Assert.False(map.ContainsKey(100_000 % 5)); // the oldest write of the cycle is the one missing
        for (int k = 1; k <= 4; k++)
        {
            Assert.True(map.TryGetValue((100_000 - k) % 5, out int v));
            Assert.Equal(100_000 - k, v);
        }
    }
}
