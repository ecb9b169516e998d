namespace Gateway.Core.Scheduling;

/// <summary><c>hfair</c>'s locality pick: the best-affinity request among those within the lag bound of their least-served siblings.</summary>
public sealed partial class HierarchicalFairScheduler
{
    private sealed record LocalChoice(QueuedRequest Best, QueuedRequest Strict);

    /// <summary>
    /// The locality choice without side effects: the strict fair pick (among within-share paths when
    /// <paramref name="withinShare"/>; null if there is none), and the best-affinity request within the lag bound.
    /// </summary>
    private LocalChoice? ChooseLocal(Func<QueuedRequest, double> affinity, int band, double withinShareFactor)
    {
        // The strict fair pick: served anyway once locality picks have passed it over MaxHeadSkips times, so a
        // request waits at most that many picks beyond its fair turn, however cheap the cached requests overtaking it.
        Node? strictLeaf;
        if (withinShareFactor > 0)
        {
            var budget = Math.Max(1, _locality.MaxCandidates);
            strictLeaf = FindWithinShare(_root, band, withinShareFactor, ref budget);
            if (strictLeaf is null)
            {
                return null;
            }
        }
        else
        {
            strictLeaf = StrictLeaf(_root, band);
        }

        var strict = strictLeaf.Queue![band].Min!;
        if (strict.LocalitySkips >= _locality.MaxHeadSkips)
        {
            return new LocalChoice(strict, strict);
        }

        var search = new LocalitySearch(affinity, _locality.MaxCandidates);
        Search(_root, band, withinShareFactor, ref search);
        return new LocalChoice(search.Best ?? strict, strict); // MaxCandidates <= 0: nothing was scored
    }

    private QueuedRequest DispatchLocal(LocalChoice choice, int band, bool measureLag = true)
    {
        var (best, strict) = (choice.Best, choice.Strict);
        var leaf = (Node)best.SchedulerState!;
        if (!ReferenceEquals(strict, best))
        {
            strict.LocalitySkips++;
            LocalityReorders++;
            var head = leaf.Queue![band].Min!;
            if (!ReferenceEquals(head, best) && !ReferenceEquals(head, strict))
            {
                head.LocalitySkips++;
            }
        }

        if (measureLag)
        {
            // Observed lag of the chosen path: the service, in cost units, each node had beyond its band's leader.
            double lag = 0;
            for (var n = leaf; n.Parent is not null; n = n.Parent)
            {
                lag = Math.Max(lag, (n.Vruntime - n.Parent.ActiveSet(band).Min!.Vruntime) * n.Weight);
            }

            MaxDispatchLag = Math.Max(MaxDispatchLag, lag);
        }

        LocalityPicks++;
        Dispatch(best, leaf, band);
        return best;
    }

    private void Search(Node node, int band, double withinShareFactor, ref LocalitySearch search)
    {
        if (node.IsLeaf)
        {
            var queue = node.Queue![band];
            var head = queue.Min!;
            if (head.LocalitySkips >= _locality.MaxHeadSkips)
            {
                search.Offer(head);
                return;
            }

            var taken = 0;
            foreach (var r in queue)
            {
                if (taken++ >= _locality.PerLeafCandidates || search.Full)
                {
                    break;
                }

                search.Offer(r);
            }

            return;
        }

        var set = node.ActiveSet(band);
        var leader = set.Min!.Vruntime;
        var scanned = 0;
        foreach (var child in set)
        {
            // Children come in vruntime order; weights differ, so a later child may still be within its bound.
            // The scan is capped so a pick stays bounded however many siblings are backlogged.
            if (search.Full || scanned++ >= _locality.MaxCandidates)
            {
                return;
            }

            // Bound: (v(child) - v(leader)) x weight(child) <= L, i.e. at most L cost units of its own service ahead.
            if ((child.Vruntime - leader) * child.Weight <= Math.Max(0, _locality.LagBound)
                && (withinShareFactor <= 0 || child.IsLeaf || WithinShareAt(child, withinShareFactor)))
            {
                Search(child, band, withinShareFactor, ref search);
            }
        }
    }

    private struct LocalitySearch(Func<QueuedRequest, double> affinity, int max)
    {
        private int _seen;
        private double _bestScore;

        public QueuedRequest? Best { get; private set; }

        public readonly bool Full => _seen >= max;

        public void Offer(QueuedRequest r)
        {
            var score = affinity(r);
            if (Best is null || score > _bestScore)
            {
                Best = r;
                _bestScore = score;
            }

            _seen++;
        }
    }
}
