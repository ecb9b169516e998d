using Gateway.Core.Routing;
using Gateway.Core.Routing.KvAware;
using Gateway.Core.Tests.Routing;
using Worker.Contract;

namespace Gateway.Core.Tests.Routing.KvAware;

/// <summary>
/// Memory-aware placement with the hot window on workers that publish KV events: an idle context claims memory on its
/// worker only while the worker still holds it. Workers without events keep counting every idle context (no signal).
/// </summary>
public class KvAwareHotWindowResidencyTests
{
    private const int Bs = 16;
    private readonly FakeTimeProvider _time = new();

    private static readonly KvAwareOptions Placement = new() { MemoryPressureWeight = 1, MemoryHotWindow = TimeSpan.FromSeconds(30) };

    private static List<WorkerInfo> Fleet(bool events) => KvAwarePolicyTests.Fleet(2, events);

    private static RouteRequest Req(ulong[] blocks, string session) => new()
    {
        TenantPath = "t",
        SessionId = session,
        BlockHashes = blocks,
        PromptTokens = blocks.Length * Bs,
        ExpectedOutputTokens = 64,
    };

    // Session a's 6,000-block context finishes a turn on worker 0 (worker 1 draining while it runs) and sits idle,
    // nothing pinned; both workers then report 20,000 blocks free (the engine's LRU would hand a's blocks out).
    private KvAwarePolicy WithIdleContextOnWorker0(int seed, List<WorkerInfo> fleet, ulong[] context, bool events)
    {
        var p = new KvAwarePolicy(_time, new Random(seed), Placement);
        if (events)
        {
            p.Precise.Apply(0, new KvEvent(1, KvEventType.Stored, context, null));
            p.Precise.ApplySnapshot(1, 1, []);
        }

        fleet[1].Draining = true;
        var a = Req(context, "a");
        var d = p.Route(a, fleet);
        p.OnRouted(a, fleet[d.WorkerIndex]);
        p.OnCompleted(a, fleet[0], 0);
        fleet[1].Draining = false;
        fleet[0].KvBlocksFree = fleet[1].KvBlocksFree = 20_000;
        return p;
    }

    [Fact]
    public void IdleContextStillHeld_ClaimsItsWorkersMemory()
    {
        for (int seed = 1; seed <= 16; seed++)
        {
            var fleet = Fleet(events: true);
            var p = WithIdleContextOnWorker0(seed, fleet, Chains.Of(1, 6_000), events: true);
            // A new 15,000-block context: 20,000 − 6,004 held idle leaves 13,996 on worker 0.
            Assert.Equal(1, p.Route(Req(Chains.Of(seed * 100_000, 15_000), "n"), fleet).WorkerIndex);
        }
    }

    [Fact]
    public void IdleContextTheWorkerHasEvicted_NoLongerClaimsMemory()
    {
        int onWorker0 = 0;
        for (int seed = 1; seed <= 16; seed++)
        {
            var fleet = Fleet(events: true);
            var context = Chains.Of(1, 6_000);
            var p = WithIdleContextOnWorker0(seed, fleet, context, events: true);
            p.Precise.Apply(0, new KvEvent(2, KvEventType.Removed, context[^1..], null)); // tail evicted first

            onWorker0 += p.Route(Req(Chains.Of(seed * 100_000, 15_000), "n"), fleet).WorkerIndex == 0 ? 1 : 0;
        }

        Assert.InRange(onWorker0, 1, 15); // both workers have room: an even draw
    }

    [Fact]
    public void WorkersWithoutEvents_KeepCountingEveryIdleContext()
    {
        for (int seed = 1; seed <= 16; seed++)
        {
            var fleet = Fleet(events: false);
            var p = WithIdleContextOnWorker0(seed, fleet, Chains.Of(1, 6_000), events: false);
            Assert.Equal(1, p.Route(Req(Chains.Of(seed * 100_000, 15_000), "n"), fleet).WorkerIndex);
        }
    }
}
