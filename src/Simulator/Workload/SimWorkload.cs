using System.Globalization;
using Llm.Prompt.Hashing;
using Gateway.Core.Scheduling;
using Simulator.Traces;

namespace Simulator.Workload;

/// <summary>A session of the workload: its turns in order, its tenant and (for sub-agents) its parent.</summary>
public sealed class SimSession
{
    /// <summary>Position in <see cref="SimWorkload.Sessions"/>.</summary>
    public int Index { get; internal set; }

    /// <summary>Session id (trace id, or "r{n}" for a one-shot request).</summary>
    public required string Id { get; init; }

    /// <summary>True for a one-shot request of a session-less trace (open loop, no session id sent).</summary>
    public bool OneShot { get; init; }

    /// <summary>Tenant path.</summary>
    public string Tenant { get; internal set; } = "default";

    /// <summary>Cache salt of the tenant (see <see cref="Scenario.CacheSalt"/>).</summary>
    public ulong Salt { get; internal set; }

    /// <summary>Turns in order.</summary>
    public List<TraceRequest> Turns { get; } = [];

    /// <summary>Open-loop start time of a root session (seconds), after rate/time scaling.</summary>
    public double Start { get; internal set; }

    /// <summary>Parent session of a sub-agent, else null.</summary>
    public SimSession? Parent { get; internal set; }

    /// <summary>Parent turn after which this child starts (-1: before the parent's first turn).</summary>
    public int ParentTurn { get; internal set; } = -1;

    /// <summary>Child sessions in trace order.</summary>
    public List<SimSession> Children { get; } = [];
}

/// <summary>
/// The request stream every run replays: sessions (closed loop) and one-shot requests (open loop), with tenants,
/// salts and start times fixed once, so every policy combination sees the identical stream.
/// </summary>
public sealed class SimWorkload
{
    /// <summary>Every session (roots and children), roots first in start order.</summary>
    public List<SimSession> Sessions { get; } = [];

    /// <summary>Root sessions in start order.</summary>
    public List<SimSession> Roots { get; } = [];

    /// <summary>Tenants in ordinal order.</summary>
    public List<string> Tenants { get; } = [];

    /// <summary>Requests (turns) in the workload.</summary>
    public int RequestCount { get; private set; }

    /// <summary>Prompt-token prefix-hit ratio of one infinite cache over the stream (upper bound for any router, however little KV it has).</summary>
    public double IdealPrefixHitRatio { get; private set; }

    /// <summary>
    /// Prefix-hit ratio of one cache the size of the fleet's KV pool (<see cref="PoolBlocks"/>, host tier included) with
    /// Belady's optimal eviction (<see cref="BoundedIdeal.Pooled"/>): the upper bound for any router on this fleet.
    /// </summary>
    public double PooledIdealPrefixHitRatio { get; private set; }

    /// <summary>Prefix-hit ratio of one LRU cache the size of the fleet's KV pool (<see cref="BoundedIdeal.PooledLru"/>): what the fleet would hit if it cached like one engine.</summary>
    public double PooledLruPrefixHitRatio { get; private set; }

    /// <summary>KV blocks of the whole fleet (workers x (HBM + host blocks)) the pooled ideal holds.</summary>
    public long PoolBlocks { get; private set; }

    /// <summary>Engine block size the hashes are cut with.</summary>
    public int EngineBlockSize { get; private set; }

    /// <summary>Notes for the user (defaults applied, dropped entries).</summary>
    public List<string> Notes { get; } = [];

    /// <summary>
    /// Builds the workload from trace requests and scenario knobs; <paramref name="mix"/> (from <c>--mix-trace</c>) is
    /// added as one-shot non-agent requests of tenant <see cref="Scenario.MixTenant"/>, at their recorded times or as a
    /// Poisson process of <see cref="Scenario.MixRate"/> (its own seeded stream, so the agent stream is unchanged).
    /// </summary>
    public static SimWorkload Build(IReadOnlyList<TraceRequest> requests, Scenario s, IReadOnlyList<TraceRequest>? mix = null)
    {
        var w = new SimWorkload { EngineBlockSize = s.BlockSize };
        var byId = new Dictionary<string, SimSession>(StringComparer.Ordinal);
        var ordered = new List<SimSession>();
        int oneShot = 0;
        foreach (var r in requests)
        {
            if (!HashMapper.Compatible(r.BlockSize, s.BlockSize))
            {
                throw new FormatException($"{r.Source}: trace block size {r.BlockSize} and --block-size {s.BlockSize} do not divide");
            }

            if (r.Session is null)
            {
                var one = new SimSession { Id = "r" + (oneShot++).ToString(CultureInfo.InvariantCulture), OneShot = true };
                one.Turns.Add(r);
                ordered.Add(one);
                continue;
            }

            if (!byId.TryGetValue(r.Session, out var session))
            {
                session = new SimSession { Id = r.Session };
                byId.Add(r.Session, session);
                ordered.Add(session);
            }

            session.Turns.Add(r);
        }

        // Link sub-agents to parents; an orphan (parent missing) becomes a root.
        var roots = new List<SimSession>();
        foreach (var session in ordered)
        {
            var first = session.Turns[0];
            if (first.Parent is not null && byId.TryGetValue(first.Parent, out var parent) && parent != session)
            {
                session.Parent = parent;
                session.ParentTurn = Math.Min(first.ParentTurn, parent.Turns.Count - 1);
                parent.Children.Add(session);
            }
            else
            {
                if (first.Parent is not null)
                {
                    w.Notes.Add($"{first.Source}: parent session '{first.Parent}' not in the trace; replayed as a root session");
                }

                roots.Add(session);
            }
        }

        if (s.MaxSessions > 0 && roots.Count > s.MaxSessions)
        {
            roots.RemoveRange(s.MaxSessions, roots.Count - s.MaxSessions);
        }

        // Tenants: the trace's, else synthetic by root order (round robin, or smooth weighted round robin with
        // --tenant-mix), else "default"; children inherit.
        var synthetic = new SyntheticTenants(s.Tenants, SchedulingPolicyContext.ParseWeights(s.TenantMix));
        for (int i = 0; i < roots.Count; i++)
        {
            var root = roots[i];
            string tenant = root.Turns[0].Tenant ?? (s.Tenants > 0 ? synthetic.Next() : "default");
            AssignTenant(root, tenant.Trim('/'), s.CacheSalt);
        }

        // Start times: Poisson session starts, or the recorded arrival of the first turn; then rate and time scaling.
        var rates = SchedulingPolicyContext.ParseWeights(s.TenantRates);
        var random = new Random(s.Seed);
        double clock = 0;
        for (int i = 0; i < roots.Count; i++)
        {
            var root = roots[i];
            double start;
            if (s.SessionRate > 0)
            {
                start = clock;
                clock += -Math.Log(1.0 - random.NextDouble()) / s.SessionRate;
            }
            else
            {
                start = root.Turns[0].T;
            }

            root.Start = start / (RateOf(rates, root.Tenant) * s.TimeScale);
        }

        var sortedRoots = roots.Select((r, i) => (r, i)).OrderBy(x => x.r.Start).ThenBy(x => x.i).Select(x => x.r).ToList();

        // --max-requests: keep whole sessions in start order, truncate the one that crosses the limit.
        int budget = s.MaxRequests > 0 ? s.MaxRequests : int.MaxValue;
        var excluded = new HashSet<string>(Scenario.SplitList(s.ExcludeTenants ?? ""), StringComparer.Ordinal);
        foreach (var root in sortedRoots)
        {
            if (budget <= 0)
            {
                break;
            }

            budget = Truncate(root, budget);
            if (!excluded.Contains(root.Tenant))
            {
                // Excluded after truncation, so the other tenants' requests are the same as in the full run.
                w.Roots.Add(root);
            }
        }

        if (mix is not null)
        {
            AddMix(w, mix, s);
        }

        foreach (var root in w.Roots)
        {
            AddTree(w, root);
        }

        for (int i = 0; i < w.Sessions.Count; i++)
        {
            w.Sessions[i].Index = i;
            w.RequestCount += w.Sessions[i].Turns.Count;
        }

        w.Tenants.AddRange(w.Sessions.Select(x => x.Tenant).Distinct(StringComparer.Ordinal).OrderBy(x => x, StringComparer.Ordinal));
        var profile = Worker.Engine.ModelProfiles.Get(s.Profile);
        var engine = new Worker.Engine.EngineOptions { Profile = profile, KvBlocks = s.KvBlocks, HostKvBlocks = s.HostKvBlocks, BlockSize = s.BlockSize };
        ComputeIdeal(w, (long)s.Workers * ((long)engine.EffectiveKvBlocks + engine.EffectiveHostKvBlocks));
        return w;
    }

    private static void AddMix(SimWorkload w, IReadOnlyList<TraceRequest> mix, Scenario s)
    {
        var random = new Random(unchecked(s.Seed * 7919 + 17));
        int n = s.MixMaxRequests > 0 ? Math.Min(s.MixMaxRequests, mix.Count) : mix.Count;
        double clock = 0;
        for (int i = 0; i < n; i++)
        {
            var r = mix[i];
            if (!HashMapper.Compatible(r.BlockSize, s.BlockSize))
            {
                throw new FormatException($"{r.Source}: mix trace block size {r.BlockSize} and --block-size {s.BlockSize} do not divide");
            }

            var one = new SimSession { Id = "m" + i.ToString(CultureInfo.InvariantCulture), OneShot = true };
            one.Turns.Add(r);
            AssignTenant(one, Scenario.MixTenant, s.CacheSalt);
            if (s.MixRate > 0)
            {
                one.Start = clock;
                clock += -Math.Log(1.0 - random.NextDouble()) / s.MixRate;
            }
            else
            {
                one.Start = r.T;
            }

            w.Roots.Add(one);
        }
    }

    /// <summary>Synthetic tenant names for roots: "tenant-i" in smooth weighted round robin (weights from --tenant-mix, default 1).</summary>
    private sealed class SyntheticTenants
    {
        private readonly string[] _names;
        private readonly double[] _weights;
        private readonly double[] _current;
        private readonly double _total;

        public SyntheticTenants(int count, IReadOnlyDictionary<string, double> mix)
        {
            int n = Math.Max(1, count);
            _names = new string[n];
            _weights = new double[n];
            _current = new double[n];
            for (int i = 0; i < n; i++)
            {
                _names[i] = "tenant-" + i.ToString(CultureInfo.InvariantCulture);
                _weights[i] = mix.TryGetValue(_names[i], out var m) ? m : 1.0;
                _total += _weights[i];
            }
        }

        public string Next()
        {
            int best = 0;
            for (int i = 0; i < _names.Length; i++)
            {
                _current[i] += _weights[i];
                if (_current[i] > _current[best])
                {
                    best = i;
                }
            }

            _current[best] -= _total;
            return _names[best];
        }
    }

    private static void AssignTenant(SimSession session, string tenant, string saltMode)
    {
        session.Tenant = tenant;
        session.Salt = saltMode switch
        {
            "none" => 0UL,
            "org" => BlockHasher.SaltOf(tenant.Split('/')[0]),
            _ => BlockHasher.SaltOf(tenant),
        };
        foreach (var c in session.Children)
        {
            AssignTenant(c, tenant, saltMode);
        }
    }

    /// <summary>Product of the rate multipliers of every node on the tenant's path.</summary>
    internal static double RateOf(IReadOnlyDictionary<string, double> rates, string tenant)
    {
        if (rates.Count == 0)
        {
            return 1.0;
        }

        double rate = 1.0;
        int idx = -1;
        do
        {
            idx = tenant.IndexOf('/', idx + 1);
            string node = idx < 0 ? tenant : tenant[..idx];
            if (rates.TryGetValue(node, out double r))
            {
                rate *= r;
            }
        }
        while (idx >= 0);
        return rate;
    }

    private static int Truncate(SimSession session, int budget)
    {
        if (session.Turns.Count > budget)
        {
            session.Turns.RemoveRange(budget, session.Turns.Count - budget);
        }

        budget -= session.Turns.Count;
        // Children that start after a dropped turn never run; the rest share what is left.
        session.Children.RemoveAll(c => c.ParentTurn >= session.Turns.Count);
        for (int i = 0; i < session.Children.Count; i++)
        {
            if (budget <= 0)
            {
                session.Children.RemoveRange(i, session.Children.Count - i);
                break;
            }

            budget = Truncate(session.Children[i], budget);
        }

        return budget;
    }

    private static void AddTree(SimWorkload w, SimSession session)
    {
        w.Sessions.Add(session);
        foreach (var c in session.Children)
        {
            AddTree(w, c);
        }
    }

    /// <summary>Nominal time of a turn (start + recorded offset) for ordering the ideal-cache pass.</summary>
    private static double NominalTime(SimSession session, TraceRequest turn)
    {
        var root = session;
        while (root.Parent is not null)
        {
            root = root.Parent;
        }

        return root.Start + (turn.T - root.Turns[0].T);
    }

    private static void ComputeIdeal(SimWorkload w, long poolBlocks)
    {
        var order = new List<(double T, int Session, int Turn)>(w.RequestCount);
        foreach (var s in w.Sessions)
        {
            for (int t = 0; t < s.Turns.Count; t++)
            {
                order.Add((NominalTime(s, s.Turns[t]), s.Index, t));
            }
        }

        order.Sort();
        var blocks = new List<ulong[]>(order.Count);
        var prompts = new List<int>(order.Count);
        foreach (var (_, si, ti) in order)
        {
            var session = w.Sessions[si];
            blocks.Add(HashMapper.Map(session.Turns[ti], session.Salt, w.EngineBlockSize));
            prompts.Add(session.Turns[ti].In);
        }

        w.IdealPrefixHitRatio = BoundedIdeal.Unbounded(blocks, prompts, w.EngineBlockSize);
        w.PoolBlocks = poolBlocks;
        w.PooledIdealPrefixHitRatio = poolBlocks > 0 ? BoundedIdeal.Pooled(blocks, prompts, w.EngineBlockSize, poolBlocks) : w.IdealPrefixHitRatio;
        w.PooledLruPrefixHitRatio = poolBlocks > 0 ? BoundedIdeal.PooledLru(blocks, prompts, w.EngineBlockSize, poolBlocks) : w.IdealPrefixHitRatio;
    }
}
