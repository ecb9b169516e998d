using Gateway.Core.Routing.KvAware;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>The precise index with workers that have a host tier: cpu-medium events track a second set.</summary>
public class PreciseIndexTierTests
{
    private readonly FakeTimeProvider _time = new();

    private PreciseIndex NewIndex() => new(_time, TimeSpan.FromSeconds(2), maxWorkers: 64);

    [Fact]
    public void Demotion_RemovesFromHbmAndAddsToHost_AndTheTieredRunContinuesThroughHost()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 6);
        index.Apply(0, new KvEvent(1, KvEventType.Stored, chain, null));
        index.Apply(0, new KvEvent(2, KvEventType.Removed, chain[4..]));
        index.Apply(0, new KvEvent(3, KvEventType.Stored, chain[4..], null, KvMedium.Cpu));

        Assert.Equal(4, index.Match(chain, new int[1]));             // HBM match stops where HBM stops
        Assert.Equal(2, index.TieredRun(0, chain, 4, out int host)); // the rest is reloadable
        Assert.Equal(2, host);
        Assert.Equal(3, index.LastSeq(0));
        Assert.False(index.Holds(0, chain[5]));
    }

    [Fact]
    public void HostEviction_EndsTheTieredRun_AndDoesNotTouchHbm()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 4);
        index.Apply(0, new KvEvent(1, KvEventType.Stored, chain[..2], null));
        index.Apply(0, new KvEvent(2, KvEventType.Stored, chain[2..], null, KvMedium.Cpu));
        index.Apply(0, new KvEvent(3, KvEventType.Removed, chain[3..], null, KvMedium.Cpu));
        index.Apply(0, new KvEvent(4, KvEventType.Removed, chain[..1], null, KvMedium.Cpu)); // a block never in host: no effect

        Assert.Equal(2, index.Match(chain, new int[1]));
        Assert.Equal(1, index.TieredRun(0, chain, 2, out int host));
        Assert.Equal(1, host);
    }

    [Fact]
    public void Snapshot_ReplacesBothTiers()
    {
        var index = NewIndex();
        var chain = Chains.Of(1, 4);
        index.Apply(0, new KvEvent(1, KvEventType.Stored, chain, null, KvMedium.Cpu));

        index.ApplySnapshot(0, 9, chain[..1], chain[1..3]);

        Assert.Equal(1, index.Match(chain, new int[1]));
        Assert.Equal(2, index.TieredRun(0, chain, 1, out int host));
        Assert.Equal(2, host);
        Assert.Equal(2, index.HostCountFor(0));
    }

    [Theory]
    [InlineData(null, KvMedium.Gpu)]
    [InlineData("gpu", KvMedium.Gpu)]
    [InlineData("cpu", KvMedium.Cpu)]
    public void Medium_ParsesTheWireNames(string? name, KvMedium expected)
    {
        Assert.True(KvEvent.TryParseMedium(name, out var medium));
        Assert.Equal(expected, medium);
        Assert.False(KvEvent.TryParseMedium("disk", out _));
    }
}
