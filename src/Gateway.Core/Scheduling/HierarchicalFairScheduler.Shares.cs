namespace Gateway.Core.Scheduling;

/// <summary><c>hfair</c>'s in-flight shares: per-node in-flight counts and active weights, the within-share test and the share ratios recorded at dispatch.</summary>
public sealed partial class HierarchicalFairScheduler
{
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
        // A path never seen has nothing in flight.
        return !_nodes.TryGetValue(Normalize(tenantPath), out var node) || PathWithinShare(node, factor);
    }

    private Node? FindWithinShare(Node node, int band, double factor, ref int budget)
    {
        if (node.IsLeaf)
        {
            return node; // sessions of one key share its slot count; the key level decides
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

            if (FindWithinShare(child, band, factor, ref budget) is { } leaf)
            {
                return leaf;
            }
        }

        return null;
    }

    /// <summary>Largest in-flight-to-share ratio on the path from <paramref name="node"/> up (see <see cref="QueuedRequest.ShareAtDispatch"/>).</summary>
    private static double ShareRatio(Node? node)
    {
        double ratio = 0;
        for (var n = node; n is not null && n.Parent is not null; n = n.Parent)
        {
            var parent = n.Parent;
            var activeWeight = parent.ActiveWeight + (n.Work > 0 ? 0 : n.Weight);
            if (activeWeight > 0 && n.Weight > 0)
            {
                ratio = Math.Max(ratio, n.InFlight / (n.Weight / activeWeight * (parent.InFlight + 1)));
            }
        }

        return ratio;
    }

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
