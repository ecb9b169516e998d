using Gateway.Core.Scheduling;

namespace Gateway.Core.Tests.Scheduling;

/// <summary>
/// Deterministic service loop: <see cref="Slots"/> requests run at once; each tick every running request gets its
/// prefill done (first tick) or one output token; a finished request is settled and its slot refilled by the
/// scheduler. Tenants (sources) keep a given number of requests queued, so they stay backlogged.
/// Service delivered is counted per source in effective cost (w_in x uncached prompt + w_out x output).
/// </summary>
internal sealed class ServiceLoop
{
    private readonly IRequestScheduler _scheduler;
    private readonly List<Source> _sources = [];
    private readonly List<Running> _running = [];
    private readonly Random _random;
    private readonly CostModel _cost = CostModel.Default;
    private long _nextId;

    public ServiceLoop(IRequestScheduler scheduler, int slots, int seed = 1)
    {
        _scheduler = scheduler;
        Slots = slots;
        _random = new Random(seed);
    }

    public int Slots { get; }

    public Func<QueuedRequest, double>? Affinity { get; set; }

    /// <summary>Called before each pick (for invariant checks).</summary>
    public Action? BeforePick { get; set; }

    /// <summary>Called after each pick with the chosen request.</summary>
    public Action<QueuedRequest>? AfterPick { get; set; }

    public Source Add(string tenantPath, int keepQueued, string? session = null, int priorityClass = 0, bool cached = false, double resumeCredit = 0)
    {
        var s = new Source(tenantPath, keepQueued, session, priorityClass, cached) { ResumeCredit = resumeCredit };
        _sources.Add(s);
        return s;
    }

    public void Remove(Source s) => _sources.Remove(s);

    public void ResetService()
    {
        foreach (var s in _sources)
        {
            s.Service = 0;
        }
    }

    public void Run(int ticks)
    {
        for (var t = 0; t < ticks; t++)
        {
            foreach (var s in _sources)
            {
                while (s.Queued < s.KeepQueued)
                {
                    var prompt = _random.Next(50, 400);
                    var r = new QueuedRequest
                    {
                        Id = ++_nextId,
                        TenantPath = s.TenantPath,
                        // "*": a new session per request (every request wakes an idle session leaf).
                        SessionId = s.Session == "*" ? "s" + _nextId.ToString(System.Globalization.CultureInfo.InvariantCulture) : s.Session,
                        ResumeCredit = s.ResumeCredit,
                        PromptTokens = prompt,
                        ExpectedCachedTokens = s.Cached ? prompt / 2 : 0,
                        ExpectedOutputTokens = _random.Next(5, 60),
                        PriorityClass = s.PriorityClass,
                        Payload = s,
                    };
                    _scheduler.Enqueue(r);
                    s.Queued++;
                }
            }

            while (_running.Count < Slots && _scheduler.Count > 0)
            {
                BeforePick?.Invoke();
                var r = Affinity is null ? _scheduler.Dequeue() : _scheduler.Dequeue(Affinity);
                Assert.NotNull(r);
                AfterPick?.Invoke(r);
                var s = (Source)r.Payload!;
                s.Queued--;
                s.Dispatched++;
                _running.Add(new Running(r, s));
            }

            for (var i = _running.Count - 1; i >= 0; i--)
            {
                var run = _running[i];
                if (!run.Prefilled)
                {
                    run.Prefilled = true;
                    run.Source.Service += _cost.Prefill(run.Request.PromptTokens, run.Request.ExpectedCachedTokens);
                    continue;
                }

                run.Generated++;
                run.Source.Service += _cost.Output(1);
                _scheduler.ChargeOutput(run.Request, 1);
                if (run.Generated >= run.Request.ExpectedOutputTokens)
                {
                    _scheduler.Complete(run.Request, run.Request.ExpectedCachedTokens, run.Generated);
                    _running.RemoveAt(i);
                }
            }
        }
    }

    public static double Jain(IReadOnlyList<double> x)
    {
        double sum = 0, sq = 0;
        foreach (var v in x)
        {
            sum += v;
            sq += v * v;
        }

        return sum * sum / (x.Count * sq);
    }

    internal sealed class Source(string tenantPath, int keepQueued, string? session, int priorityClass, bool cached)
    {
        public string TenantPath { get; } = tenantPath;
        public int KeepQueued { get; set; } = keepQueued;
        public string? Session { get; } = session;
        public int PriorityClass { get; } = priorityClass;
        public bool Cached { get; } = cached;
        public double ResumeCredit { get; init; }
        public int Queued { get; set; }
        public int Dispatched { get; set; }
        public double Service { get; set; }
    }

    private sealed class Running(QueuedRequest request, Source source)
    {
        public QueuedRequest Request { get; } = request;
        public Source Source { get; } = source;
        public bool Prefilled { get; set; }
        public int Generated { get; set; }
    }
}
