using Gateway.Core.Collections;
using Gateway.Core.Tests.Routing;

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

    [Fact]
    public void MaxIdle_DropsEntriesNotWrittenForThatLong_AtTheNextWrite_AndReportsThem()
    {
        var time = new FakeTimeProvider();
        var evicted = new List<string>();
        var map = new BoundedMap<string, int>(1000, evicted: (k, _) => evicted.Add(k), time: time, maxIdle: TimeSpan.FromMinutes(10));
        map.Set("old", 1);
        time.Advance(TimeSpan.FromMinutes(6));
        map.Set("kept", 2);
        map.Set("old-rewritten", 3);
        time.Advance(TimeSpan.FromMinutes(2));
        map.Set("old-rewritten", 4);                // its write stamp moves to now
        time.Advance(TimeSpan.FromMinutes(3));      // "old" is 11 min old, "kept" 5
        Assert.True(map.ContainsKey("old"));        // nothing is dropped without a write
        map.Set("new", 5);

        Assert.Equal(["old"], evicted);
        Assert.Equal(["kept", "old-rewritten", "new"], new[] { "old", "kept", "old-rewritten", "new" }.Where(map.ContainsKey));
        Assert.Equal(1, map.Evictions);
    }

    [Fact]
    public void MaxIdle_KeepsASteadyStreamOfOneOffKeysAtWhatArrivedWithinTheAge()
    {
        // One new key a second for two hours, forgotten after ten minutes: the map holds ten minutes' worth, not 7,200.
        var time = new FakeTimeProvider();
        var map = new BoundedMap<long, int>(1_000_000, time: time, maxIdle: TimeSpan.FromMinutes(10));
        for (long i = 0; i < 7200; i++)
        {
            map.Set(i, 0);
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.InRange(map.Count, 600, 601);
        Assert.Equal(7200 - map.Count, map.Evictions);
    }

    [Fact]
    public void MaxIdle_WithoutAClock_IsRefused() =>
        Assert.Throws<ArgumentNullException>(() => new BoundedMap<int, int>(10, maxIdle: TimeSpan.FromSeconds(1)));

    [Fact]
    public void BriefEntries_LeaveAfterTheBriefAge_PlainOnesAfterTheFullAge()
    {
        var time = new FakeTimeProvider();
        var evicted = new List<string>();
        var map = new BoundedMap<string, int>(1000, evicted: (k, _) => evicted.Add(k), time: time,
            maxIdle: TimeSpan.FromMinutes(10), briefIdle: TimeSpan.FromMinutes(1));
        map.Set("once", 1, brief: true);
        map.Set("again", 1, brief: true);
        map.Set("plain", 1);
        time.Advance(TimeSpan.FromSeconds(30));
        map.Set("again", 2);                      // written again, plainly: now kept the full age

        time.Advance(TimeSpan.FromSeconds(31));
        map.Set("tick", 0);                       // ages are checked on a write
        Assert.Equal(["once"], evicted);
        Assert.True(map.ContainsKey("again"));
        Assert.True(map.ContainsKey("plain"));

        time.Advance(TimeSpan.FromMinutes(9));    // 10 min 1 s after "plain" was written, 9 min 31 s after "again"
        map.Set("tick", 0);
        Assert.Equal(["once", "plain"], evicted);
        Assert.True(map.ContainsKey("again"));
    }

    [Fact]
    public void OverCapacity_TheOldestWriteGoes_WhetherBriefOrNot()
    {
        var time = new FakeTimeProvider();
        var evicted = new List<string>();
        var map = new BoundedMap<string, int>(3, evicted: (k, _) => evicted.Add(k), time: time,
            maxIdle: TimeSpan.FromMinutes(10), briefIdle: TimeSpan.FromMinutes(1));
        map.Set("p1", 1);
        map.Set("b1", 1, brief: true);
        map.Set("p2", 1);
        map.Set("b2", 1, brief: true);            // over: p1 is the oldest write
        map.Set("p3", 1);                         // over: b1

        Assert.Equal(["p1", "b1"], evicted);
        Assert.Equal(3, map.Count);
    }

    [Fact]
    public void BriefWrites_WithoutABriefAge_ArePlainWrites()
    {
        var time = new FakeTimeProvider();
        var map = new BoundedMap<string, int>(10, time: time, maxIdle: TimeSpan.FromMinutes(10));
        map.Set("a", 1, brief: true);
        time.Advance(TimeSpan.FromMinutes(5));
        map.Set("b", 1);

        Assert.True(map.ContainsKey("a"));
        Assert.Null(map.BriefIdle);
        Assert.Throws<ArgumentOutOfRangeException>(() => new BoundedMap<string, int>(10, time: time, maxIdle: TimeSpan.FromMinutes(1), briefIdle: TimeSpan.FromMinutes(2)));
    }

    [Fact]
    public void AfterABurst_TheStorageShrinksWithTheCount()
    {
        var time = new FakeTimeProvider();
        var map = new BoundedMap<int, int>(1_000_000, time: time, maxIdle: TimeSpan.FromMinutes(10), briefIdle: TimeSpan.FromMinutes(1));
        for (int i = 0; i < 100; i++)
        {
            map.Set(i, i);                        // the steady sessions
        }

        int steady = map.StorageCapacity;
        for (int i = 0; i < 50_000; i++)
        {
            map.Set(1_000_000 + i, i, brief: true); // a burst of one-shot entries
        }

        int peak = map.StorageCapacity;
        Assert.True(peak >= 50_100);
        time.Advance(TimeSpan.FromSeconds(61));
        for (int i = 0; i < 100; i++)
        {
            map.Set(i, i);                        // the steady sessions go on; the burst ages out
        }

        Assert.Equal(100, map.Count);
        Assert.True(map.StorageCapacity < peak / 100, $"capacity {map.StorageCapacity} after a peak of {peak}");
        Assert.True(map.StorageCapacity <= 4 * Math.Max(steady, 256));
    }

    [Fact]
    public void RemovingMostEntries_ShrinksTheStorage()
    {
        var map = new BoundedMap<int, int>(100_000);
        for (int i = 0; i < 10_000; i++)
        {
            map.Set(i, i);
        }

        int peak = map.StorageCapacity;
        for (int i = 0; i < 9_990; i++)
        {
            Assert.True(map.Remove(i));
        }

        Assert.Equal(10, map.Count);
        Assert.True(map.StorageCapacity < peak / 10, $"capacity {map.StorageCapacity} after a peak of {peak}");
        for (int i = 9_990; i < 10_000; i++)
        {
            Assert.True(map.TryGetValue(i, out int v));
            Assert.Equal(i, v);
        }
    }
}
