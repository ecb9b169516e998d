namespace Gateway.Core.Scheduling;

/// <summary>
/// <c>hfair</c>: hierarchical fair shares over the tenant tree (org → team → key → session).
/// Follows Linux CFS group scheduling (each group is one entity in its parent's run queue, runtime charged at
/// every level as <c>vruntime += cost / weight</c>, pick walks down taking the least-vruntime child) with VTC's
/// service function (Sheng et al., OSDI'24): cost = w_in x uncached prompt tokens + w_out x output tokens.
/// <list type="bullet">
/// <item>Charging: the predicted prefill cost at dispatch, output tokens as they stream (<see cref="ChargeOutput"/>),
/// the difference to the actual cost at <see cref="Complete"/> (completion or cancel).</item>
/// <item>Lift: a node that becomes backlogged is placed at <c>max(own, parent.MinVruntime)</c>, where
/// MinVruntime is the monotonic minimum vruntime of the parent's backlogged children (CFS min_vruntime;
/// VTC's counter lift). Idle time earns no credit. On an equal vruntime the node charged least recently goes first,
/// so a tenant lifted onto a flooder's vruntime is served before the flooder's next request.</item>
/// <item>Every request sits in a leaf under its tenant node, one leaf per session (weight 1) plus one for
/// sessionless requests, so a key opening many sessions competes as one entity with its sibling keys.</item>
/// <item>Priority bands: interactive (class 0) is always picked before batch (class 1); vruntime is shared.</item>
/// <item>Resumed agent turns (<see cref="QueuedRequest.ResumeCredit"/>): first in their leaf, and a session leaf they
/// wake is placed that many cost units ahead of its siblings (leaf level only: tenants' shares are unchanged).</item>
/// <item>Locality: <see cref="Dequeue(Func{QueuedRequest, double})"/> picks the best-affinity request among
/// those whose nodes are within <see cref="LocalityOptions.LagBound"/> of their least-served sibling.</item>
/// <item>In-flight share (<see cref="WithinShare"/>, <see cref="DequeueWithinShare(double)"/>): every node counts its
/// requests in flight and the weight of its active children (queued or in flight), so a node's in-flight count can be
/// compared with its weighted share of its parent's; <see cref="ReservedCapacity"/> keeps the last free slots for tenants
/// not over their share.</item>
/// </list>
/// Knobs: weights by path (unnamed nodes weigh 1), <see cref="CostModel"/>, <see cref="LocalityOptions"/>.
/// Pick is O(depth x log children). State is keyed by path, so <see cref="UpdateWeights"/> (config reload) keeps it.
/// </summary>
public sealed partial class HierarchicalFairScheduler : IRequestScheduler, IServiceAccounting
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "hfair";

    private const int Bands = 2;

    private static readonly IComparer<Node> NodeOrder = Comparer<Node>.Create(static (a, b) =>
    {
        var c = a.Vruntime.CompareTo(b.Vruntime);
        return c != 0 ? c : a.TieOrder.CompareTo(b.TieOrder);
    });

    private static readonly IComparer<QueuedRequest> RequestOrder = QueuedRequest.ResumedThenFifo;

    private readonly Dictionary<string, Node> _nodes = new(StringComparer.Ordinal);
    private readonly Node _root;
    private readonly CostModel _cost;
    private readonly LocalityOptions _locality;
    private Func<string, double> _weightOf;
    private long _seq;
    private int _count;

    /// <summary>Creates the scheduler.</summary>
    public HierarchicalFairScheduler(Func<string, double>? weightOf = null, CostModel? cost = null, LocalityOptions? locality = null)
    {
        _weightOf = weightOf ?? (static _ => 1.0);
        _cost = cost ?? CostModel.Default;
        _locality = locality ?? LocalityOptions.Default;
        _root = new Node(string.Empty, null, 1.0, 0, isLeaf: false);
    }

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public int Count => _count;

    /// <summary>Cost model in use.</summary>
    public CostModel Cost => _cost;

    /// <inheritdoc />
    public void UpdateWeights(Func<string, double> weightOf)
    {
        ArgumentNullException.ThrowIfNull(weightOf);
        _weightOf = weightOf;
        foreach (var node in _nodes.Values)
        {
            // vruntime is unchanged, so sort order in the parents' sets stays valid. Leaves always weigh 1.
            node.Weight = SanitizeWeight(weightOf(node.Path));
        }

        RecomputeActiveWeights();
    }

    /// <summary>Cumulative service (cost units) charged to a tenant path, 0 if unknown.</summary>
    public double ServiceOf(string tenantPath) => _nodes.TryGetValue(Normalize(tenantPath), out var n) ? n.Service : 0;

    /// <summary>Virtual runtime of a tenant path (service / weight plus lifts), 0 if unknown.</summary>
    public double VruntimeOf(string tenantPath) => _nodes.TryGetValue(Normalize(tenantPath), out var n) ? n.Vruntime : 0;

    /// <summary>Requests queued under a tenant path (all bands), 0 if unknown.</summary>
    public int QueuedUnder(string tenantPath) =>
        _nodes.TryGetValue(Normalize(tenantPath), out var n) ? n.Pending[0] + n.Pending[1] : 0;

    /// <summary>Locality picks made (<see cref="Dequeue(Func{QueuedRequest, double})"/>).</summary>
    public long LocalityPicks { get; private set; }

    /// <summary>Locality picks whose choice differs from the strict fair order (<see cref="Dequeue()"/>'s pick).</summary>
    public long LocalityReorders { get; private set; }

    /// <summary>
    /// Largest lag observed at a locality pick: max over the chosen path's nodes of
    /// <c>(v(node) − v(least-served backlogged sibling)) x weight(node)</c>, in cost units; at most
    /// <see cref="LocalityOptions.LagBound"/> by construction (reported so hosts can show it next to the bound).
    /// </summary>
    public double MaxDispatchLag { get; private set; }

    /// <summary>Number of tenant-tree nodes held (orgs, teams, keys; not leaves).</summary>
    public int NodeCount => _nodes.Count;

    /// <summary>Session leaves held under <paramref name="tenantPath"/> (idle sessions are dropped).</summary>
    public int SessionCount(string tenantPath) =>
        _nodes.TryGetValue(Normalize(tenantPath), out var n) && n.Sessions is { } s ? s.Count : 0;

    /// <inheritdoc />
    public void Enqueue(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.SchedulerState is not null)
        {
            throw new InvalidOperationException($"request {request.Id} is already queued or in flight");
        }

        var band = BandOf(request);
        var leaf = GetLeaf(request.TenantPath, request.SessionId);
        leaf.Queue![band].Add(request);
        request.SchedulerState = leaf;
        _count++;
        AddWork(leaf, +1);

        for (var n = leaf; n.Parent is not null; n = n.Parent)
        {
            var parent = n.Parent;
            var wasIdle = n.Pending[0] + n.Pending[1] == 0;
            n.Pending[band]++;
            if (n.Pending[band] != 1)
            {
                continue; // already in the parent's band set; only counts change above
            }

            if (wasIdle)
            {
                // Lift: no banking of idle credit (CFS place_entity / VTC counter lift). The node is in no set now.
                n.Vruntime = Math.Max(n.Vruntime, parent.MinVruntime);
                if (n == leaf && request.ResumeCredit > 0)
                {
                    // A resumed agent turn (CFS's sleeper credit for a task waking from I/O): its session starts this far
                    // ahead of its siblings, at the leaf only, so the tenant's own place among tenants is unchanged.
                    n.Vruntime -= request.ResumeCredit / n.Weight;
                }
            }

            parent.ActiveSet(band).Add(n);
            parent.RefreshMin();
        }
    }

    /// <inheritdoc />
    public QueuedRequest? Dequeue()
    {
        var band = FirstBand();
        if (band < 0)
        {
            return null;
        }

        var n = StrictLeaf(_root, band);
        var request = n.Queue![band].Min!;
        Dispatch(request, n, band);
        return request;
    }

    /// <inheritdoc />
    public QueuedRequest? Dequeue(Func<QueuedRequest, double> affinity)
    {
        ArgumentNullException.ThrowIfNull(affinity);
        var band = FirstBand();
        return band < 0 ? null : DispatchLocal(ChooseLocal(affinity, band, 0)!, band);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The plain fair pick when its tenant path is within <paramref name="factor"/> x its in-flight share
    /// (<see cref="WithinShare"/>); otherwise the
    /// least-served request (first non-empty priority band) among within-share paths, found by walking the tree in
    /// vruntime order and skipping over-share subtrees (at most <see cref="LocalityOptions.MaxCandidates"/> nodes looked
    /// at), counted in <see cref="ShareOverrides"/>; null when no within-share request is queued.
    /// </remarks>
    public QueuedRequest? DequeueWithinShare(double factor) => DequeueFirstFit(factor, 0);

    /// <inheritdoc />
    /// <remarks>
    /// The locality pick of <see cref="Dequeue(Func{QueuedRequest, double})"/> when its tenant path is within its in-flight
    /// share; otherwise the same pick among within-share paths only (the lag bound is then not guaranteed: an over-share
    /// sibling with less service is passed over, which is the point; counted in <see cref="ShareOverrides"/> and left out
    /// of <see cref="MaxDispatchLag"/>); null when no within-share request is queued.
    /// </remarks>
    public QueuedRequest? DequeueWithinShare(Func<QueuedRequest, double> affinity, double factor)
    {
        ArgumentNullException.ThrowIfNull(affinity);
        var band = FirstBand();
        if (band < 0)
        {
            return null;
        }

        var choice = ChooseLocal(affinity, band, 0)!;
        if (PathWithinShare(((Node)choice.Best.SchedulerState!).Parent, factor))
        {
            return DispatchLocal(choice, band);
        }

        choice = ChooseLocal(affinity, band, factor);
        if (choice is null)
        {
            return null;
        }

        ShareOverrides++;
        return DispatchLocal(choice, band, measureLag: false);
    }

    /// <summary>Picks that served a within-share tenant ahead of an over-share one with less service (<see cref="DequeueWithinShare(double)"/>).</summary>
    public long ShareOverrides { get; private set; }

    private static Node StrictLeaf(Node from, int band)
    {
        var n = from;
        while (!n.IsLeaf)
        {
            n = n.ActiveSet(band).Min!;
        }

        return n;
    }

    /// <inheritdoc />
    public bool Remove(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.SchedulerState is not Node leaf || !leaf.Queue![BandOf(request)].Remove(request))
        {
            return false;
        }

        Unqueue(leaf, BandOf(request));
        request.SchedulerState = null;
        AddWork(leaf, -1);
        PruneIfIdle(leaf);
        return true;
    }

    /// <inheritdoc />
    public void Charge(string tenantPath, double cost)
    {
        ArgumentNullException.ThrowIfNull(tenantPath);
        if (cost == 0 || double.IsNaN(cost) || double.IsInfinity(cost))
        {
            return;
        }

        ChargeNode(GetNode(Normalize(tenantPath)), cost);
    }

    /// <inheritdoc />
    public void ChargeOutput(QueuedRequest request, int tokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (tokens <= 0 || request.SchedulerState is not InFlight f)
        {
            return;
        }

        ChargeNode(f.Leaf, request.RecordOutput(_cost, tokens));
    }

    /// <inheritdoc />
    public void Complete(QueuedRequest request, int cachedPromptTokens, int outputTokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.SchedulerState is not InFlight f)
        {
            return; // never dispatched, or already settled
        }

        var actual = _cost.Prefill(request.PromptTokens, cachedPromptTokens) + _cost.Output(outputTokens);
        var delta = actual - request.ChargedCost;
        request.ChargedCost = actual;
        request.ChargedOutputTokens = Math.Max(0, outputTokens);
        request.SchedulerState = null;
        if (delta != 0)
        {
            ChargeNode(f.Leaf, delta);
        }

        for (var n = f.Leaf; n is not null; n = n.Parent)
        {
            n.InFlight--;
        }

        AddWork(f.Leaf, -1);
        PruneIfIdle(f.Leaf);
    }

    private void Dispatch(QueuedRequest request, Node leaf, int band)
    {
        leaf.Queue![band].Remove(request);
        Unqueue(leaf, band);
        request.ShareAtDispatch = ShareRatioWithRemote(leaf.Parent);
        request.ContendedAtDispatch = Contended(leaf.Parent);
        request.NeighbourShareAtDispatch = request.ContendedAtDispatch ? NeighbourShareRatio(leaf.Parent) : 0;
        request.BackloggedAtDispatch = Backlogged(leaf.Parent, queuedBesideIt: 0); // others of its tenant still wait
        for (var n = leaf; n is not null; n = n.Parent)
        {
            n.InFlight++; // work (queued + in flight) is unchanged: the request moved from one to the other
        }

        request.SchedulerState = new InFlight(leaf);
        var cost = _cost.Prefill(request.PromptTokens, request.ExpectedCachedTokens);
        request.ChargedCost = cost;
        request.ChargedOutputTokens = 0;
        if (cost != 0)
        {
            ChargeNode(leaf, cost);
        }
    }

    private void Unqueue(Node leaf, int band)
    {
        _count--;
        for (var n = leaf; n.Parent is not null; n = n.Parent)
        {
            n.Pending[band]--;
            if (n.Pending[band] == 0)
            {
                n.Parent.ActiveSet(band).Remove(n);
                n.Parent.RefreshMin();
            }
        }
    }

    private void ChargeNode(Node node, double cost)
    {
        for (var n = node; n.Parent is not null; n = n.Parent)
        {
            var parent = n.Parent;
            var active0 = n.Pending[0] > 0;
            var active1 = n.Pending[1] > 0;
            if (active0) { parent.ActiveSet(0).Remove(n); }
            if (active1) { parent.ActiveSet(1).Remove(n); }
            n.Vruntime += cost / n.Weight;
            n.Service += cost;
            n.TieOrder = ++_seq; // equal vruntime: the node charged least recently goes first (see NodeOrder)
            if (active0) { parent.ActiveSet(0).Add(n); }
            if (active1) { parent.ActiveSet(1).Add(n); }
            if (active0 || active1)
            {
                parent.RefreshMin();
            }
        }

        _root.Service += cost;
    }

    private int FirstBand()
    {
        for (var b = 0; b < Bands; b++)
        {
            if (_root.ActiveCount(b) > 0)
            {
                return b;
            }
        }

        return -1;
    }

    private static int BandOf(QueuedRequest r) => r.PriorityClass <= 0 ? 0 : 1;

    private static string Normalize(string path) => path.Trim('/');

    private static double SanitizeWeight(double w) => w > 0 && !double.IsInfinity(w) && !double.IsNaN(w) ? w : 1.0;

    private Node GetLeaf(string tenantPath, string? sessionId)
    {
        var parent = GetNode(Normalize(tenantPath));
        if (sessionId is null)
        {
            return parent.DefaultLeaf ??= new Node(parent.Path, parent, 1.0, ++_seq, isLeaf: true);
        }

        parent.Sessions ??= new Dictionary<string, Node>(StringComparer.Ordinal);
        if (!parent.Sessions.TryGetValue(sessionId, out var leaf))
        {
            leaf = new Node(parent.Path, parent, 1.0, ++_seq, isLeaf: true) { SessionId = sessionId };
            parent.Sessions.Add(sessionId, leaf);
        }

        return leaf;
    }

    private Node GetNode(string path)
    {
        if (path.Length == 0)
        {
            return _root;
        }

        if (_nodes.TryGetValue(path, out var node))
        {
            return node;
        }

        var slash = path.LastIndexOf('/');
        var parent = slash < 0 ? _root : GetNode(path[..slash]);
        node = new Node(path, parent, SanitizeWeight(_weightOf(path)), ++_seq, isLeaf: false);
        _nodes.Add(path, node);
        return node;
    }

    private void PruneIfIdle(Node leaf)
    {
        // Session leaves are ephemeral: drop them once idle so a key with a million past sessions holds no state.
        if (leaf.SessionId is { } id && leaf.InFlight == 0 && leaf.Pending[0] + leaf.Pending[1] == 0)
        {
            leaf.Parent!.Sessions!.Remove(id);
        }
    }
}
