using System.Buffers;
using System.IO.Hashing;
using System.Text;

namespace Llm.Prompt.Hashing;

/// <summary>
/// XXH64 (System.IO.Hashing) of a string's UTF-8 bytes: the stable, machine-independent hash used for tenant
/// salts, session keys and deterministic seeds. Short strings are encoded into a stack buffer, longer ones into
/// a pooled array, so hashing allocates nothing.
/// </summary>
public static class TextHash
{
    /// <summary>XXH64 of the UTF-8 bytes of <paramref name="text"/> with <paramref name="seed"/>.</summary>
    public static ulong Utf8XxHash64(ReadOnlySpan<char> text, ulong seed = 0)
    {
        int max = Encoding.UTF8.GetMaxByteCount(text.Length);
        if (max <= 512)
        {
            Span<byte> buf = stackalloc byte[max];
            int n = Encoding.UTF8.GetBytes(text, buf);
            return XxHash64.HashToUInt64(buf[..n], unchecked((long)seed));
        }

        byte[] rented = ArrayPool<byte>.Shared.Rent(max);
        try
        {
            int n = Encoding.UTF8.GetBytes(text, rented);
            return XxHash64.HashToUInt64(rented.AsSpan(0, n), unchecked((long)seed));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
