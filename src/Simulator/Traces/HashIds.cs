namespace Simulator.Traces;

/// <summary>
/// A request's trace block ids. Consecutive turns of a session repeat almost the whole previous prompt, so a
/// list may share its leading part with an earlier list (<see cref="Prefix"/>) and store only its own tail:
/// the agent traces hold ~100 M ids that would otherwise take gigabytes.
/// </summary>
public sealed class HashIds
{
    /// <summary>An empty list.</summary>
    public static readonly HashIds Empty = new(null, 0, []);

    private HashIds(HashIds? prefix, int prefixLength, long[] tail)
    {
        Prefix = prefix;
        PrefixLength = prefixLength;
        Tail = tail;
        Count = prefixLength + tail.Length;
    }

    /// <summary>Shared leading list (its first <see cref="PrefixLength"/> ids), or null.</summary>
    public HashIds? Prefix { get; }

    /// <summary>How many leading ids come from <see cref="Prefix"/>.</summary>
    public int PrefixLength { get; }

    /// <summary>This list's own ids after the shared prefix.</summary>
    public long[] Tail { get; }

    /// <summary>Number of ids.</summary>
    public int Count { get; }

    /// <summary>A plain list.</summary>
    public static HashIds Of(long[] ids) => ids.Length == 0 ? Empty : new HashIds(null, 0, ids);

    /// <summary>
    /// Builds <paramref name="ids"/>, sharing the longest common prefix with <paramref name="previous"/> when that
    /// saves memory (at least 16 ids).
    /// </summary>
    public static HashIds Sharing(HashIds? previous, long[] ids)
    {
        if (previous is null || previous.Count == 0 || ids.Length == 0)
        {
            return Of(ids);
        }

        int n = Math.Min(previous.Count, ids.Length);
        int common = 0;
        // Walk previous lazily: flatten once (bounded by its length).
        var prev = previous.ToArray();
        while (common < n && prev[common] == ids[common])
        {
            common++;
        }

        if (common < 16)
        {
            return Of(ids);
        }

        return new HashIds(previous, common, ids[common..]);
    }

    /// <summary>Copies every id into <paramref name="destination"/> (length ≥ <see cref="Count"/>).</summary>
    public void CopyTo(Span<long> destination)
    {
        // Iterative: walk down the prefix chain writing each tail at its offset.
        var node = this;
        int end = Count;
        while (node is not null && end > 0)
        {
            int tailStart = node.PrefixLength;
            if (end > tailStart)
            {
                node.Tail.AsSpan(0, end - tailStart).CopyTo(destination[tailStart..end]);
                end = tailStart;
            }

            node = node.Prefix;
        }
    }

    /// <summary>A flat copy.</summary>
    public long[] ToArray()
    {
        var a = new long[Count];
        CopyTo(a);
        return a;
    }
}
