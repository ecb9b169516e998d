using Gateway.Core.Routing;

namespace Gateway.Core.Tests.Routing.Baselines;

internal static class BaselineTestHelpers
{
    private static long s_nextId;

    public static List<WorkerInfo> Workers(int n)
    {
        var list = new List<WorkerInfo>();
        for (int i = 0; i < n; i++)
        {
            list.Add(new WorkerInfo($"w{i}", i));
        }

        return list;
    }

    /// <summary>A request whose blocks are <paramref name="prefix"/>-based ids 0..blocks-1 (shared prefixes share hashes).</summary>
    public static RouteRequest Request(string prefix, int blocks, int extraTokens = 0, int blockSize = 16)
    {
        var hashes = new ulong[blocks];
        ulong parent = Llm.Prompt.Hashing.BlockHasher.Root;
        ulong salt = Llm.Prompt.Hashing.BlockHasher.SaltOf(prefix);
        for (int i = 0; i < blocks; i++)
        {
            parent = Llm.Prompt.Hashing.BlockHasher.HashSynthetic(parent, salt, i, 0);
            hashes[i] = parent;
        }

        return new RouteRequest
        {
            RequestId = Interlocked.Increment(ref s_nextId),
            TenantPath = "t",
            BlockHashes = hashes,
            BlockSize = blockSize,
            PromptTokens = blocks * blockSize + extraTokens,
        };
    }

    /// <summary>Routes and charges like a host does; returns the chosen index.</summary>
    public static int Dispatch(IRoutingPolicy policy, RouteRequest r, List<WorkerInfo> workers)
    {
        var d = policy.Route(r, workers);
        Assert.True(d.WorkerIndex >= 0);
        workers[d.WorkerIndex].OnDispatched(r.PromptTokens - d.PredictedCachedTokens);
        policy.OnRouted(r, workers[d.WorkerIndex]);
        return d.WorkerIndex;
    }
}
