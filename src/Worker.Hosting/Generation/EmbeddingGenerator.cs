using Llm.Prompt.Hashing;

namespace Worker.Generation;

/// <summary>
/// Deterministic embeddings: a unit vector whose components are standard normals drawn from SplitMix64 seeded by
/// XXH64 of the input text, so equal texts give equal vectors on every machine and different texts give
/// (nearly) orthogonal ones. Not semantic; it exists so clients and the gateway can exercise the endpoint.
/// </summary>
internal static class EmbeddingGenerator
{
    public static float[] Embed(string text, int dimensions)
    {
        var rng = new DeterministicRandom(TextHash.Utf8XxHash64(text, 0xE3BEDUL));
        var v = new float[dimensions];
        double norm = 0;
        for (int i = 0; i < v.Length; i++)
        {
            double x = rng.NextGaussian();
            v[i] = (float)x;
            norm += x * x;
        }

        float inv = norm > 0 ? (float)(1.0 / Math.Sqrt(norm)) : 0f;
        for (int i = 0; i < v.Length; i++)
        {
            v[i] *= inv;
        }

        return v;
    }
}
