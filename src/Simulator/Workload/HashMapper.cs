using Llm.Prompt.Hashing;
using Simulator.Traces;

namespace Simulator.Workload;

/// <summary>
/// Maps trace block ids onto engine block hashes. A trace block of B_t tokens covers B_t / B_e engine blocks
/// (B_t ≥ B_e), each hashed as <c>HashSynthetic(previous engine hash, tenant salt, trace id, part)</c>, chained from
/// <see cref="BlockHasher.Root"/>; when B_t &lt; B_e, B_e / B_t trace ids fold into one engine block. Only full
/// engine blocks of the prompt are hashed (a partial tail is never cached), and never more than the trace ids
/// cover. Equal id prefixes give equal hash prefixes, for every request of the same tenant salt.
/// </summary>
public static class HashMapper
{
    /// <summary>Checks that the two block sizes divide.</summary>
    public static bool Compatible(int traceBlockSize, int engineBlockSize) =>
        traceBlockSize > 0 && engineBlockSize > 0 &&
        (traceBlockSize % engineBlockSize == 0 || engineBlockSize % traceBlockSize == 0);

    /// <summary>Engine hashes of <paramref name="r"/>'s prompt.</summary>
    public static ulong[] Map(TraceRequest r, ulong salt, int engineBlockSize)
    {
        long[] ids = r.HashIds.ToArray();
        return Map(ids, r.In, r.BlockSize, salt, engineBlockSize);
    }

    /// <summary>Engine hashes of a prompt of <paramref name="promptTokens"/> with trace ids <paramref name="ids"/>.</summary>
    public static ulong[] Map(ReadOnlySpan<long> ids, int promptTokens, int traceBlockSize, ulong salt, int engineBlockSize)
    {
        if (!Compatible(traceBlockSize, engineBlockSize))
        {
            throw new ArgumentException($"trace block size {traceBlockSize} and engine block size {engineBlockSize} do not divide");
        }

        int full = promptTokens / engineBlockSize;
        ulong parent = BlockHasher.Root;
        if (traceBlockSize >= engineBlockSize)
        {
            int k = traceBlockSize / engineBlockSize;
            int n = Math.Min(full, ids.Length * k);
            var result = new ulong[n];
            for (int j = 0; j < n; j++)
            {
                parent = BlockHasher.HashSynthetic(parent, salt, ids[j / k], j % k);
                result[j] = parent;
            }

            return result;
        }
        else
        {
            int m = engineBlockSize / traceBlockSize;
            int n = Math.Min(full, ids.Length / m);
            var result = new ulong[n];
            for (int j = 0; j < n; j++)
            {
                ulong h = parent;
                for (int q = 0; q < m; q++)
                {
                    h = BlockHasher.HashSynthetic(h, salt, ids[j * m + q], 0);
                }

                parent = h;
                result[j] = h;
            }

            return result;
        }
    }
}
