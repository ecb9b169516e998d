namespace Gateway.Core.Scheduling;

/// <summary><c>hfair</c>'s in-flight shares: per-node in-flight counts and active weights, the within-share test and the share ratios recorded at dispatch.</summary>
public sealed partial class HierarchicalFairScheduler
{
    private int _remote;

    /// <summary>Requests other gateway replicas have in flight on the fleet, as last set by <see cref="SetRemoteInFlight"/>.</summary>
    public int RemoteInFlight => _remote;

    /// <summary>
    /// Tells the scheduler that other gateway replicas have <paramref name="inFlight"/> requests in flight on the same
    /// workers (from the shared slot counts). Which tenants they belong to is not known here, so they count as the work of
    /// one neighbour of equal weight: every tenant of this replica is then contended (<see cref="QueuedRequest.ContendedAtDispatch"/>),
    /// and a tenant alone on this replica is within its share only while it holds less than factor x half of the cluster's
    /// work (<see cref="QueuedRequest.ShareAtDispatch"/>). A tenant with neighbours on this replica is judged among them,
    /// as without replicas. A tenant entering through several replicas counts its remote part as a neighbour's.
    /// </summary>
    public void SetRemoteInFlight(int inFlight) => _remote = Math.Max(0, inFlight);

    /// <summary>Whether another tenant of this replica has work (queued or in flight) beside <paramref name="node"/>'s at some level of its path (sessions of one key do not contend).</summary>
    private static bool LocallyContended(Node? node)
    {
        for (var n = node; n is not null && n.Parent is not null; n = n.Parent)
        {
            if (n.Parent.ActiveWeight - (n.Work > 0 ? n.Weight : 0) > 1e-9)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether another tenant has work beside <paramref name="node"/>'s: on this replica, or on another one (<see cref="SetRemoteInFlight"/>).</summary>
    private bool Contended(Node? node) => _remote > 0 || LocallyContended(node);

    /// <summary>
    /// <see cref="ShareRatio"/>, and for a tenant alone on this replica while others have work elsewhere, its in-flight
    /// count over half of the cluster's in flight counting one more (the remote work as one equal neighbour).
    /// </summary>
    private double ShareRatioWithRemote(Node? node)
    {
        var ratio = ShareRatio(node);
        if (_remote > 0 && !LocallyContended(node))
        {
            ratio = Math.Max(ratio, _root.InFlight / ((_root.InFlight + _remote + 1) / 2.0));
        }

        return ratio;
    }

    /// <summary>
    /// Within <paramref name="factor"/> x its share at every level (other replicas' work included), not backlogged, and
    /// beside a neighbour at least <paramref name="overShareFactor"/> x over its share (<see cref="NeighbourShareRatio"/>,
    /// other replicas' work included) while a tenant of this replica has work too: other replicas' work alone does not
    /// count here, since it may be the tenant's own, entering through another replica (two replicas would then together
    /// fill more than a worker's slots).
    /// </summary>
    private bool UrgentAt(Node? keyNode, double factor, double overShareFactor) =>
        LocallyContended(keyNode) && !Backlogged(keyNode, queuedBesideIt: 1) && NeighbourShareRatio(keyNode) >= overShareFactor
        && PathWithinShare(keyNode, factor) && ShareRatioWithRemote(keyNode) < factor;

    /// <summary>
    /// Other replicas' requests in flight as one neighbour of weight 1 beside this replica's active orgs (which tenants
    /// they belong to is not shared, nor their queues): their in-flight count over that share of the cluster's in flight,
    /// counting one more; 0 without other replicas' work.
    /// </summary>
    private double RemoteShareRatio() =>
        _remote > 0 ? _remote / (1.0 / (_root.ActiveWeight + 1) * (_root.InFlight + _remote + 1)) : 0;

    /// <summary>
    /// Whether <paramref name="node"/> has more than <paramref name="queuedBesideIt"/> requests waiting here: backlogged
    /// (more than one waiting, the one being released included). A backlogged tenant gets no hint, so two tenants that both
    /// keep a backlog are never ranked apart inside the worker (there their fair split is the gateway's order).
    /// </summary>
    private static bool Backlogged(Node? node, int queuedBesideIt) =>
        node is not null && node.Pending[0] + node.Pending[1] > queuedBesideIt;

    /// <summary>
    /// How far over its share the heaviest backlogged neighbour of <paramref name="node"/> is: the largest
    /// <see cref="DemandRatioAt"/> over the siblings, at every level of its path, with more than one request waiting in
    /// this queue (sessions of one key are not neighbours), and of other replicas' work in flight
    /// (<see cref="RemoteShareRatio"/>). One waiting request is what a quiet tenant's burst leaves behind while the
    /// worker takes one request per step; a flood keeps a backlog.
    /// </summary>
    private double NeighbourShareRatio(Node? node)
    {
        double ratio = RemoteShareRatio();
        for (var n = node; n is not null && n.Parent is not null; n = n.Parent)
        {
            for (var band = 0; band < Bands; band++)
            {
                if (n.Parent.ActiveCount(band) == 0)
                {
                    continue;
                }

                foreach (var sibling in n.Parent.ActiveSet(band))
                {
                    if (sibling != n && !sibling.IsLeaf && Backlogged(sibling, queuedBesideIt: 1))
                    {
                        ratio = Math.Max(ratio, DemandRatioAt(sibling));
                    }
                }
            }
        }

        return ratio;
    }

    /// <summary>
    /// The least-served queued request of a tenant within <paramref name="factor"/> x its in-flight share and contended
    /// by a tenant of this replica (a request the worker's priority hint will mark urgent), or null. Released beyond capacity
    /// with a factor of 1, under its share (<see cref="ReservedCapacity.Overdraw"/>).
    /// </summary>
    public QueuedRequest? DequeueUrgent(double factor, double overShareFactor = ReservedCapacity.DefaultOverShareFactor) =>
        DequeueFirstFit(factor, overShareFactor);

    /// <summary>
    /// The plain fair pick when its tenant passes the test (within share, or urgent: within share and contended);
    /// otherwise the least-served request among paths that pass it (<see cref="FindWithinShare"/>), counted in
    /// <see cref="ShareOverrides"/>; null when none is queued.
    /// </summary>
    private QueuedRequest? DequeueFirstFit(double factor, double urgentOver)
    {
        bool urgent = urgentOver > 0;
        var band = FirstBand();
        if (band < 0)
        {
            return null;
        }

        var leaf = StrictLeaf(_root, band);
        if (!(urgent ? UrgentAt(leaf.Parent, factor, urgentOver) : PathWithinShare(leaf.Parent, factor)))
        {
            var budget = Math.Max(1, _locality.MaxCandidates);
            leaf = FindWithinShare(_root, band, factor, ref budget, urgentOver);
            if (leaf is null)
            {
                return null;
            }

            ShareOverrides++;
        }

        var request = leaf.Queue![band].Min!;
        Dispatch(request, leaf, band);
        return request;
    }

    /// <summary>Every node from <paramref name="node"/> up to (not including) the root is within its share.</summary>
    private static bool PathWithinShare(Node? node, double factor)
    {
        for (var n = node; n is not null && n.Parent is not null; n = n.Parent)
        {
            if (!WithinShareAt(n, factor))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Whether <paramref name="tenantPath"/> is within <paramref name="factor"/> x its in-flight share: at every level of
    /// its path (org, team, key), the node's requests in flight are below factor x its weighted share of its parent's
    /// in-flight requests counting one more, <c>inFlight(n) &lt; factor x weight(n) / activeWeight(parent) x
    /// (inFlight(parent) + 1)</c>, where activeWeight(parent) sums the weights of the parent's children that have work
    /// (queued or in flight), the node itself included. With nothing else active a node is always within its share
    /// (factor &gt;= 1); with nothing in flight every node is.
    /// </summary>
    public bool WithinShare(string tenantPath, double factor = 1)
    {
        ArgumentNullException.ThrowIfNull(tenantPath);
        // Nodes never seen have no work; their nearest seen ancestor (its org, say) may still be over its share.
        var path = Normalize(tenantPath);
        while (!_nodes.ContainsKey(path) && path.LastIndexOf('/') is var slash and > 0)
        {
            path = path[..slash];
        }

        return !_nodes.TryGetValue(path, out var node) || PathWithinShare(node, factor);
    }

    private Node? FindWithinShare(Node node, int band, double factor, ref int budget, double urgentOver = 0)
    {
        if (node.IsLeaf)
        {
            // Sessions of one key share its slot count; the key level decides.
            return urgentOver <= 0 || UrgentAt(node.Parent, factor, urgentOver) ? node : null;
        }

        foreach (var child in node.ActiveSet(band))
        {
            if (budget-- <= 0)
            {
                return null;
            }

            if (!child.IsLeaf && !WithinShareAt(child, factor))
            {
                continue;
            }

            if (FindWithinShare(child, band, factor, ref budget, urgentOver) is { } leaf)
            {
                return leaf;
            }
        }

        return null;
    }

    /// <summary>Largest <see cref="ShareRatioAt"/> on the path from <paramref name="node"/> up (see <see cref="QueuedRequest.ShareAtDispatch"/>).</summary>
    private static double ShareRatio(Node? node)
    {
        double ratio = 0;
        for (var n = node; n is not null && n.Parent is not null; n = n.Parent)
        {
            ratio = Math.Max(ratio, ShareRatioAt(n));
        }

        return ratio;
    }

    /// <summary>
    /// How far <paramref name="n"/> is over its weighted share of its parent's requests in flight, counting one more:
    /// <c>inFlight(n) / (weight(n) / activeWeight(parent) x (inFlight(parent) + 1))</c>, where activeWeight(parent) sums
    /// the weights of the parent's children with work (queued or in flight), <paramref name="n"/> included.
    /// </summary>
    private static double ShareRatioAt(Node n)
    {
        var parent = n.Parent!;
        var activeWeight = parent.ActiveWeight + (n.Work > 0 ? 0 : n.Weight);
        return activeWeight > 0 && n.Weight > 0 ? n.InFlight / (n.Weight / activeWeight * (parent.InFlight + 1)) : 0;
    }

    /// <summary>
    /// <see cref="ShareRatioAt"/>, or how far <paramref name="n"/>'s demand (queued + in flight) is over the same share of
    /// its parent's demand, whichever is larger. A tenant that starts flooding next to quiet ones holds few requests in
    /// flight for a while (one admission per engine step) but queues many: by demand it is over its share from its first
    /// backlog, so the quiet tenants' requests get the hint at once. Used for neighbours only: a tenant's own place
    /// (reserved slots) follows what it holds, or a backlogged tenant of small weight would never count as within its
    /// share while its fair part is in flight.
    /// </summary>
    private static double DemandRatioAt(Node n)
    {
        var parent = n.Parent!;
        var activeWeight = parent.ActiveWeight + (n.Work > 0 ? 0 : n.Weight);
        return activeWeight > 0 && n.Weight > 0
            ? Math.Max(ShareRatioAt(n), n.Work / (n.Weight / activeWeight * (parent.Work + 1)))
            : 0;
    }

    /// <summary><see cref="ShareRatioAt"/> below <paramref name="factor"/>, multiplied out (no rounding at an exact share).</summary>
    private static bool WithinShareAt(Node n, double factor)
    {
        var parent = n.Parent!;
        var activeWeight = parent.ActiveWeight + (n.Work > 0 ? 0 : n.Weight);
        return activeWeight <= 0 || n.InFlight < factor * n.Weight / activeWeight * (parent.InFlight + 1);
    }

    /// <summary>Work (queued + in flight) of <paramref name="leaf"/> and its ancestors changes by <paramref name="delta"/>.</summary>
    private void AddWork(Node leaf, int delta)
    {
        for (var n = leaf; n is not null; n = n.Parent)
        {
            var before = n.Work;
            n.Work += delta;
            if (n.IsLeaf || n.Parent is not { } parent)
            {
                continue;
            }

            if (before == 0 && n.Work > 0)
            {
                parent.ActiveWeight += n.Weight;
            }
            else if (before > 0 && n.Work == 0)
            {
                parent.ActiveWeight -= n.Weight;
            }

            if (parent.ActiveWeight < 1e-9)
            {
                parent.ActiveWeight = 0; // no drift once a parent's children are all idle
            }
        }
    }

    private void RecomputeActiveWeights()
    {
        _root.ActiveWeight = 0;
        foreach (var node in _nodes.Values)
        {
            node.ActiveWeight = 0;
        }

        foreach (var node in _nodes.Values)
        {
            if (node.Work > 0)
            {
                node.Parent!.ActiveWeight += node.Weight;
            }
        }
    }
}
