namespace Gateway.Core.Tests.Routing;

/// <summary>Block chains for tests: a chain named by ids, salted per tenant like the gateway's.</summary>
public static class Chains
{
    /// <summary>A chain of <paramref name="count"/> blocks whose i-th block is named by <c>start + i</c>.</summary>
    public static ulong[] Of(long start, int count, ulong salt = 0) => Extend([], start, count, salt);

    /// <summary>The chain <paramref name="prefix"/> followed by <paramref name="count"/> more blocks named from <paramref name="start"/>.</summary>
    public static ulong[] Extend(ulong[] prefix, long start, int count, ulong salt = 0)
    {
        var result = new ulong[prefix.Length + count];
        prefix.CopyTo(result, 0);
        ulong parent = prefix.Length > 0 ? prefix[^1] : Llm.Prompt.Hashing.BlockHasher.Root;
        for (int i = 0; i < count; i++)
        {
            parent = Llm.Prompt.Hashing.BlockHasher.HashSynthetic(parent, salt, start + i, 0);
            result[prefix.Length + i] = parent;
        }

        return result;
    }
}
