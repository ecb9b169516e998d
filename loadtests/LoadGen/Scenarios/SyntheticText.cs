using System.Text;

namespace LoadGen.Scenarios;

/// <summary>
/// Deterministic filler text sized in tokens. Every word is a space plus 3–5 lowercase letters: exactly one token
/// for the project's default tokenizer (a space plus at most 5 letters is one piece), about 1.5–2 tokens for a
/// real BPE vocabulary. Text made from the same key is identical in every process, so prompts built from shared
/// keys share exact prefixes (and KV blocks), and different keys diverge at once.
/// </summary>
public static class SyntheticText
{
    /// <summary>Appends <paramref name="words"/> words derived from <paramref name="key"/>.</summary>
    public static void AppendWords(StringBuilder sb, ulong key, int words)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ulong state = key ^ 0x9E3779B97F4A7C15UL;
        for (int w = 0; w < words; w++)
        {
            ulong r = SplitMix(ref state);
            int len = 3 + (int)(r % 3);
            r /= 3;
            sb.Append(' ');
            for (int i = 0; i < len; i++)
            {
                sb.Append((char)('a' + (int)(r % 26)));
                r /= 26;
            }
        }
    }

    /// <summary><paramref name="words"/> words derived from <paramref name="key"/>.</summary>
    public static string Words(ulong key, int words)
    {
        var sb = new StringBuilder(words * 5);
        AppendWords(sb, key, words);
        return sb.ToString();
    }

    /// <summary>A stable 64-bit key for a pair of values.</summary>
    public static ulong Key(ulong a, ulong b)
    {
        ulong s = a * 0xD6E8FEB86659FD93UL ^ b;
        return SplitMix(ref s);
    }

    /// <summary>A stable 64-bit key for a string (FNV-1a).</summary>
    public static ulong Key(string s)
    {
        ArgumentNullException.ThrowIfNull(s);
        ulong h = 0xCBF29CE484222325UL;
        foreach (char c in s)
        {
            h = (h ^ c) * 0x100000001B3UL;
        }

        return h;
    }

    private static ulong SplitMix(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
