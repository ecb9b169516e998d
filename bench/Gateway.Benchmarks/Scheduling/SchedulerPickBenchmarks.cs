using BenchmarkDotNet.Attributes;
using Gateway.Core.Scheduling;

namespace Gateway.Benchmarks.Scheduling;

/// <summary>
/// Scheduler pick with 10k queued requests across 1k tenants (10 orgs x 10 teams x 10 keys, 10 requests each).
/// One operation = pick (Dequeue, which also charges the prefill) + settle (Complete) + re-enqueue of the same
/// request, so the queue stays at 10k. Goal for hfair: under 20 us per pick.
/// </summary>
[MemoryDiagnoser]
public class SchedulerPickBenchmarks
{
    private IRequestScheduler _scheduler = null!;
    private Func<QueuedRequest, double> _affinity = null!;

    /// <summary>Policy under test.</summary>
    [Params("hfair", "vtc", "fcfs")]
    public string Policy { get; set; } = "hfair";

    /// <summary>Builds the queue.</summary>
    [GlobalSetup]
    public void Setup() => (_scheduler, _affinity) = Build(Policy, overShareLeader: false);

    /// <summary>
    /// The 10k-request queue. With <paramref name="overShareLeader"/>, org0 first gets 500 zero-cost requests dispatched
    /// and never completed: it stays the least-served org at vruntime 0 and holds all the in-flight requests.
    /// </summary>
    internal static (IRequestScheduler, Func<QueuedRequest, double>) Build(string policy, bool overShareLeader)
    {
        var weights = new Dictionary<string, double>();
        for (var org = 0; org < 10; org++)
        {
            weights[$"org{org}"] = 1 + org % 3;
        }

        var scheduler = SchedulingPolicies.Create(policy, new SchedulingPolicyContext { Weights = weights });
        var random = new Random(1);
        long id = 0;
        for (var i = 0; overShareLeader && i < 500; i++)
        {
            scheduler.Enqueue(new QueuedRequest { Id = ++id, TenantPath = "org0/team0/key0" });
            scheduler.Dequeue();
        }

        for (var i = 0; i < 10; i++)
        {
            for (var org = 0; org < 10; org++)
            {
                for (var team = 0; team < 10; team++)
                {
                    for (var key = 0; key < 10; key++)
                    {
                        scheduler.Enqueue(new QueuedRequest
                        {
                            Id = ++id,
                            TenantPath = $"org{org}/team{team}/key{key}",
                            SessionId = i % 2 == 0 ? null : $"s{i}",
                            PromptTokens = random.Next(100, 2000),
                            ExpectedCachedTokens = random.Next(0, 100),
                            ExpectedOutputTokens = random.Next(10, 300),
                        });
                    }
                }
            }
        }

        return (scheduler, static r => r.ExpectedCachedTokens);
    }

    /// <summary>Strict fair pick.</summary>
    [Benchmark]
    public long Pick()
    {
        var r = _scheduler.Dequeue()!;
        _scheduler.Complete(r, r.ExpectedCachedTokens, r.ExpectedOutputTokens);
        _scheduler.Enqueue(r);
        return r.Id;
    }

    /// <summary>Locality pick within the lag bound (default options: up to 64 candidates scored).</summary>
    [Benchmark]
    public long PickWithLocality()
    {
        var r = _scheduler.Dequeue(_affinity)!;
        _scheduler.Complete(r, r.ExpectedCachedTokens, r.ExpectedOutputTokens);
        _scheduler.Enqueue(r);
        return r.Id;
    }
}

/// <summary>
/// The pick for a reserved slot (<see cref="ReservedCapacity"/>) in its worst case: the same 10k-request queue, but org0
/// holds 500 zero-cost requests in flight, so it stays the least-served org (every strict and locality pick starts
/// there) and is over its share (all the in-flight requests): each pick searches twice and skips org0. fcfs and vtc
/// have no notion of share (plain pick). One operation = pick + settle + re-enqueue, as in <see cref="SchedulerPickBenchmarks"/>.
/// </summary>
[MemoryDiagnoser]
public class SchedulerReservedPickBenchmarks
{
    private IRequestScheduler _scheduler = null!;
    private Func<QueuedRequest, double> _affinity = null!;

    /// <summary>Policy under test.</summary>
    [Params("hfair", "vtc", "fcfs")]
    public string Policy { get; set; } = "hfair";

    /// <summary>Builds the queue.</summary>
    [GlobalSetup]
    public void Setup() => (_scheduler, _affinity) = SchedulerPickBenchmarks.Build(Policy, overShareLeader: true);

    /// <summary>Strict pick among within-share tenants.</summary>
    [Benchmark]
    public long PickReservedSlot()
    {
        var r = _scheduler.DequeueWithinShare(ReservedCapacity.DefaultOverShareFactor)!;
        _scheduler.Complete(r, r.ExpectedCachedTokens, r.ExpectedOutputTokens);
        _scheduler.Enqueue(r);
        return r.Id;
    }

    /// <summary>Locality pick among within-share tenants (up to 64 candidates scored, twice).</summary>
    [Benchmark]
    public long PickReservedSlotWithLocality()
    {
        var r = _scheduler.DequeueWithinShare(_affinity, ReservedCapacity.DefaultOverShareFactor)!;
        _scheduler.Complete(r, r.ExpectedCachedTokens, r.ExpectedOutputTokens);
        _scheduler.Enqueue(r);
        return r.Id;
    }
}
