namespace Gateway.Core.Scheduling;

/// <summary><c>hfair</c>'s tenant-tree node and in-flight marker.</summary>
public sealed partial class HierarchicalFairScheduler
{
    private sealed class InFlight(Node leaf)
    {
        public Node Leaf { get; } = leaf;
    }

    private sealed class Node(string path, Node? parent, double weight, long seq, bool isLeaf)
    {
        private SortedSet<Node>? _active0;
        private SortedSet<Node>? _active1;

        public string Path { get; } = path;
        public Node? Parent { get; } = parent;
        public double Weight { get; set; } = weight;
        public long Seq { get; } = seq;

        /// <summary>
        /// Order among siblings of equal vruntime: the node charged least recently first (never charged: creation order).
        /// A tenant that becomes backlogged is lifted exactly onto a backlogged flooder's vruntime, and the flooder has
        /// just been charged to get there, so the tie goes to the tenant that was idle. By creation order alone, a
        /// flooder created first won every such tie (one more of its prefills before each quiet request, live).
        /// Changed only in <see cref="ChargeNode"/>, while the node is out of its parent's active sets.
        /// </summary>
        public long TieOrder { get; set; } = seq;
        public bool IsLeaf { get; } = isLeaf;
        public string? SessionId { get; init; }
        public Node? DefaultLeaf { get; set; }
        public Dictionary<string, Node>? Sessions { get; set; }
        public double Vruntime { get; set; }
        public double Service { get; set; }
        public double MinVruntime { get; private set; }
        public int InFlight { get; set; }
        public int Work { get; set; }
        public double ActiveWeight { get; set; }
        public int[] Pending { get; } = new int[Bands];
        public SortedSet<QueuedRequest>[]? Queue { get; } = isLeaf ? [new(RequestOrder), new(RequestOrder)] : null;

        public int ActiveCount(int band) => band == 0 ? (_active0?.Count ?? 0) : (_active1?.Count ?? 0);

        public SortedSet<Node> ActiveSet(int band) => band == 0 ? (_active0 ??= new(NodeOrder)) : (_active1 ??= new(NodeOrder));

        public void RefreshMin()
        {
            var m = double.PositiveInfinity;
            if (_active0 is { Count: > 0 }) { m = _active0.Min!.Vruntime; }
            if (_active1 is { Count: > 0 }) { m = Math.Min(m, _active1.Min!.Vruntime); }
            if (!double.IsPositiveInfinity(m) && m > MinVruntime)
            {
                MinVruntime = m;
            }
        }
    }
}
