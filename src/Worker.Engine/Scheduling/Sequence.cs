namespace Worker.Engine;

/// <summary>Engine-side state of one request.</summary>
internal sealed class Sequence(EngineRequest request, long arrival)
{
    public EngineRequest Request { get; } = request;

    /// <summary>Submission order: FCFS tie-break among equal priorities, kept across preemption.</summary>
    public long Arrival { get; } = arrival;

    public List<int> BlockTable { get; } = [];

    /// <summary>Prompt ids then generated ids (capacity prompt + max output), or null when the request came without ids.</summary>
    public int[]? TokenIds { get; } = CopyIds(request);

    /// <summary>Tokens whose KV is in the block table.</summary>
    public int Computed { get; set; }

    /// <summary>Tokens emitted to the client so far.</summary>
    public int Emitted { get; set; }

    /// <summary>Prefix-cache hit of the first admission, in tokens.</summary>
    public int CachedTokens { get; set; }

    /// <summary>Of <see cref="CachedTokens"/>, tokens reloaded from the host tier at the first admission.</summary>
    public int FirstReloadedTokens { get; set; }

    /// <summary>Tokens reloaded from the host tier by the latest prefix walk.</summary>
    public int ReloadedTokens { get; set; }

    /// <summary>Reloaded tokens whose copy time is still to be charged to the step that schedules the sequence.</summary>
    public int PendingReloadTokens { get; set; }

    /// <summary>UTC ticks until which a prefetched block among its hits is still being copied (0 = none).</summary>
    public long ReadyAtTicks { get; set; }

    public bool Admitted { get; set; }

    public bool Running { get; set; }

    public bool Done { get; set; }

    /// <summary>Tokens that exist: the prompt plus every emitted token (the newest one's KV is computed by the next step).</summary>
    public int Tokens => Request.PromptTokens + Emitted;

    private static int[]? CopyIds(EngineRequest r)
    {
        if (r.PromptTokenIds is null)
        {
            return null;
        }

        var ids = new int[r.PromptTokens + r.OutputTokens];
        r.PromptTokenIds.AsSpan(0, r.PromptTokens).CopyTo(ids);
        return ids;
    }
}

/// <summary>Waiting-queue order: higher priority first, then submission order.</summary>
internal sealed class WaitingOrder : IComparer<Sequence>
{
    public static readonly WaitingOrder Instance = new();

    public int Compare(Sequence? x, Sequence? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        int c = y!.Request.Priority.CompareTo(x!.Request.Priority);
        return c != 0 ? c : x.Arrival.CompareTo(y.Arrival);
    }
}
