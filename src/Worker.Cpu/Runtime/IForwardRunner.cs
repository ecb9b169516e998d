namespace Worker.Cpu;

/// <summary>
/// A Llama forward pass over a paged K/V pool addressed by block tables: what a step executor drives, whichever device
/// computes it (<see cref="LlamaRunner"/> on the CPU; the GPU backend's runner). <see cref="Forward"/> has
/// <see cref="LlamaRunner.Forward"/>'s contract: one logits row per chunk with WantLogits, in batch order.
/// </summary>
public interface IForwardRunner : IDisposable
{
    LlamaConfig Config { get; }

    int MaxBatchTokens { get; }

    /// <summary>Blocks in the K/V pool (the engine's physical block ids index it).</summary>
    int NumBlocks { get; }

    int BlockSize { get; }

    void Forward(ReadOnlySpan<SeqChunk> batch, Span<float> logits);
}

/// <summary>A runner that can also pick the next tokens on its device from the logits of its last <see cref="IForwardRunner.Forward"/>.</summary>
public interface IDeviceSampler
{
    /// <summary>
    /// tokens[i] for logits row i: argmax when temperatures[i] &lt;= 0, else a draw from softmax(row / temperature) with
    /// the uniform number SplitMix64(seeds[i], positions[i]) (the host sampler's algorithm).
    /// </summary>
    void Sample(ReadOnlySpan<float> temperatures, ReadOnlySpan<ulong> seeds, ReadOnlySpan<int> positions, Span<int> tokens);
}

public static class SeqChunks
{
    /// <summary>Checks a batch against a model and pool; throws ArgumentException naming the bad chunk. Returns the token count.</summary>
    public static int Validate(ReadOnlySpan<SeqChunk> batch, LlamaConfig c, int maxBatchTokens, int numBlocks, int blockSize)
    {
        if (batch.Length == 0) throw new ArgumentException("empty batch");
        int tokens = 0;
        for (int ci = 0; ci < batch.Length; ci++)
        {
            var ch = batch[ci];
            int n = ch.Tokens.Length;
            if (n == 0) throw new ArgumentException($"chunk {ci} has no tokens");
            if (tokens + n > maxBatchTokens) throw new ArgumentException($"batch has more than {maxBatchTokens} tokens");
            if (ch.StartPosition < 0 || ch.StartPosition + n > c.MaxContext)
                throw new ArgumentException($"chunk {ci}: positions {ch.StartPosition}..{ch.StartPosition + n - 1} outside the context of {c.MaxContext}");
            var table = ch.BlockTable.Span;
            int blocksNeeded = (ch.StartPosition + n - 1) / blockSize + 1;
            if (table.Length < blocksNeeded) throw new ArgumentException($"chunk {ci}: block table has {table.Length} blocks, positions need {blocksNeeded}");
            for (int b = 0; b < blocksNeeded; b++)
                if ((uint)table[b] >= (uint)numBlocks) throw new ArgumentException($"chunk {ci}: block {table[b]} is outside the pool of {numBlocks}");
            foreach (int tok in ch.Tokens.Span)
                if ((uint)tok >= (uint)c.Vocab) throw new ArgumentException($"chunk {ci}: token {tok} outside the vocabulary of {c.Vocab}");
            tokens += n;
        }
        return tokens;
    }
}
