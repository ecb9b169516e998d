namespace Worker.Cpu.Tests.Runtime;

/// <summary>
/// Test driver for <see cref="LlamaRunner"/>: hands out pool blocks in a seeded shuffled order (so block tables are
/// never the identity) and runs prompts in given chunk sizes followed by greedy decoding.
/// </summary>
internal sealed class BlockAllocator(int numBlocks, int seed)
{
    private readonly Queue<int> _free = new(Enumerable.Range(0, numBlocks).OrderBy(b => (b * 7919L + seed * 31L) % numBlocks));

    public int Take() => _free.Dequeue();
}

internal sealed class Sequence(BlockAllocator blocks, int blockSize)
{
    public List<int> Tokens { get; } = [];
    public List<int> Table { get; } = [];
    public int Computed { get; set; }

    /// <summary>The next chunk: tokens [Computed, Computed + n), with blocks allocated to cover them.</summary>
    public SeqChunk Chunk(int n, bool wantLogits = true)
    {
        while (Table.Count * blockSize < Computed + n) Table.Add(blocks.Take());
        var chunk = new SeqChunk(Tokens.GetRange(Computed, n).ToArray(), Computed, Table.ToArray(), wantLogits);
        return chunk;
    }

    /// <summary>Appends the prompt, runs every not-yet-computed token in chunks of <paramref name="chunkSizes"/> (cycled), then <paramref name="decode"/> greedy tokens.</summary>
    public static (float[] FirstLogits, List<int> Generated) Run(LlamaRunner runner, Sequence seq, int[] prompt, int[] chunkSizes, int decode)
    {
        int vocab = runner.Config.Vocab;
        seq.Tokens.AddRange(prompt);
        var logits = new float[vocab];
        int ci = 0;
        int end = seq.Tokens.Count;
        while (seq.Computed < end)
        {
            int n = Math.Min(chunkSizes[ci++ % chunkSizes.Length], end - seq.Computed);
            runner.Forward([seq.Chunk(n, wantLogits: seq.Computed + n == end)], logits);
            seq.Computed += n;
        }
        var first = (float[])logits.Clone();
        var generated = new List<int>();
        for (int i = 0; i < decode; i++)
        {
            int next = TestModels.ArgMax(logits);
            generated.Add(next);
            seq.Tokens.Add(next);
            runner.Forward([seq.Chunk(1)], logits);
            seq.Computed++;
        }
        return (first, generated);
    }
}
