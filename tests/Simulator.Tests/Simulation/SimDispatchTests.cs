using Simulator.Simulation;
using Simulator.Traces;
using Simulator.Workload;

namespace Simulator.Tests.Simulation;

/// <summary>
/// The simulator's dispatch under its two capacity rules: "engine" (a worker takes work while its engine queue is short)
/// and "slots" (the gateway's rule: a fixed number of requests in flight per worker, fewer while it is saturated).
/// </summary>
public class SimDispatchTests
{
    /// <summary>A burst of one-shot requests, all arriving at t = 0, each with its own prompt.</summary>
    private static List<TraceRequest> Burst(int n) =>
        [.. Enumerable.Range(0, n).Select(i => new TraceRequest
        {
            T = 0,
            In = 64 * 16,
            Out = 32,
            BlockSize = 16,
            HashIds = HashIds.Of([.. Enumerable.Range(0, 64).Select(b => (long)(i * 1000 + b))]),
        })];

    /// <summary>Most requests between dispatch and finish at any instant.</summary>
    private static int MostInFlight(RunResult run)
    {
        var edges = run.Requests.Where(r => !r.Rejected)
            .SelectMany(r => new[] { (T: r.Dispatch, D: +1), (T: r.Finish, D: -1) })
            .OrderBy(e => e.T).ThenBy(e => e.D); // a finish frees its slot before a dispatch at the same instant takes it
        int now = 0, most = 0;
        foreach (var e in edges)
        {
            now += e.D;
            most = Math.Max(most, now);
        }

        return most;
    }

    [Fact]
    public void Slots_NeverMoreInFlightThanSlotsPerWorkerTimesWorkers_AllServed()
    {
        var scenario = new Scenario { Workers = 2, Capacity = Scenario.SlotCapacityRule, MaxInFlightPerWorker = 3 };
        var run = new SimulationRun(SimWorkload.Build(Burst(20), scenario), scenario, "least-load", "fcfs", "off").Run();
        Assert.Equal(20, run.Completed);
        Assert.Equal(6, MostInFlight(run));
    }

    [Fact]
    public void Engine_BoundsWhatWaitsInTheEngine_Slots_BoundWhatIsInFlight()
    {
        // One worker, a generous engine queue bound (100 waiting): the engine rule sends the whole burst at once; the
        // slots rule holds the gateway at its 5 slots, so the rest waits in the gateway queue, in fair order.
        var engine = new Scenario { Workers = 1, MaxWaitingPerWorker = 100 };
        var slots = new Scenario { Workers = 1, MaxWaitingPerWorker = 100, Capacity = Scenario.SlotCapacityRule, MaxInFlightPerWorker = 5 };
        var byEngine = new SimulationRun(SimWorkload.Build(Burst(20), engine), engine, "round-robin", "fcfs", "off").Run();
        var bySlots = new SimulationRun(SimWorkload.Build(Burst(20), slots), slots, "round-robin", "fcfs", "off").Run();
        Assert.Equal(20, byEngine.Completed);
        Assert.Equal(20, bySlots.Completed);
        Assert.Equal(20, MostInFlight(byEngine));
        Assert.Equal(5, MostInFlight(bySlots));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void LocalityPick_RequestReleasedForTheFreedWorker_RunsThere_AsInTheGateway(bool pickedWorker)
    {
        // Tenant a's requests share a 48-block prefix, tenant b's are cold; one slot per worker, so every dispatch after
        // the first two fills the slot a finished request freed. The pick for that worker prefers an a request once
        // the prefix is predicted there; that request goes to the worker it was picked for (reason "picked-worker")
        // and finds the prefix in its engine's cache. With --picked-worker off (the default), routing places every request.
        var burst = Enumerable.Range(0, 16).Select(i => new TraceRequest
        {
            T = i == 0 ? 0 : 0.001,
            Tenant = i % 2 == 0 ? "a" : "b",
            In = 64 * 16,
            Out = 16,
            BlockSize = 16,
            HashIds = HashIds.Of([.. Enumerable.Range(0, 64).Select(b => i % 2 == 0 && b < 48 ? (long)b : (long)(i * 1000 + b))]),
        }).ToList();
        var scenario = new Scenario { Workers = 2, Capacity = Scenario.SlotCapacityRule, MaxInFlightPerWorker = 1, PickedWorker = pickedWorker };
        var run = new SimulationRun(SimWorkload.Build(burst, scenario), scenario, "kv-aware", "hfair", "off").Run();
        Assert.Equal(16, run.Completed);
        var picked = run.Requests.Where(r => r.Reason == Gateway.Core.Routing.DispatchRouting.PickedWorkerReason).ToList();
        if (!pickedWorker)
        {
            Assert.Empty(picked);
            return;
        }

        Assert.NotEmpty(picked);
        Assert.All(picked, r => Assert.Equal("a", r.Tenant));
        Assert.All(picked, r => Assert.True(r.PredictedCachedTokens >= 48 * 16 && r.CachedTokens >= 48 * 16, $"{r.Session}: predicted {r.PredictedCachedTokens}, cached {r.CachedTokens}"));
    }

    [Fact]
    public void Validate_UnknownCapacityRule_IsAnError()
    {
        var scenario = new Scenario { Capacity = "magic", MaxInFlightPerWorker = 0 };
        var errors = scenario.Validate();
        Assert.Contains(errors, e => e.Contains("--capacity", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("--max-in-flight", StringComparison.Ordinal));
    }
}
