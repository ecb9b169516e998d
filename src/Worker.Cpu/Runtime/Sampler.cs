namespace Worker.Cpu;

/// <summary>Host-side token sampling from a logits row (the GPU backend's sample kernel runs the same algorithm).</summary>
public static class Sampler
{
    /// <summary>
    /// Draws from softmax(logits / <paramref name="temperature"/>) with a uniform number that depends only on
    /// (<paramref name="seed"/>, <paramref name="position"/>) (SplitMix64), so recomputing a position draws the same token.
    /// Overwrites <paramref name="logits"/> with unnormalised probabilities.
    /// </summary>
    public static int Sample(Span<float> logits, float temperature, ulong seed, int position)
    {
        float max = float.NegativeInfinity;
        foreach (float x in logits)
        {
            max = MathF.Max(max, x);
        }

        double sum = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            float p = float.IsNaN(logits[i]) ? 0 : MathF.Exp((logits[i] - max) / temperature);
            logits[i] = p;
            sum += p;
        }

        ulong z = seed + 0x9E3779B97F4A7C15UL * (ulong)(position + 1);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        double u = (z >> 11) * (1.0 / (1UL << 53)) * sum;
        double acc = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            acc += logits[i];
            if (u < acc)
            {
                return i;
            }
        }

        return Argmax(logits);
    }

    /// <summary>Greedy sampling: the id of the largest logit (lowest id on ties; NaN never wins).</summary>
    public static int Argmax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float max = float.NegativeInfinity;
        for (int i = 0; i < logits.Length; i++)
        {
            if (logits[i] > max)
            {
                max = logits[i];
                best = i;
            }
        }

        return best;
    }
}
