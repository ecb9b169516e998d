using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace Gateway.Core.Hashing;

/// <summary>
/// XXH64 (Yann Collet, xxHash spec rev. 0.1.1), written here because System.IO.Hashing is not in
/// the registry copy. Stable across processes and machines (little-endian reads); allocation-free.
/// Test vectors in tests/Gateway.Core.Tests/Hashing/XxHash64Tests.cs were checked against Debian's xxhsum.
/// </summary>
public static class XxHash64
{
    private const ulong Prime1 = 0x9E3779B185EBCA87UL;
    private const ulong Prime2 = 0xC2B2AE3D27D4EB4FUL;
    private const ulong Prime3 = 0x165667B19E3779F9UL;
    private const ulong Prime4 = 0x85EBCA77C2B2AE63UL;
    private const ulong Prime5 = 0x27D4EB2F165667C5UL;

    /// <summary>Hashes <paramref name="data"/> with <paramref name="seed"/>.</summary>
    public static ulong Hash(ReadOnlySpan<byte> data, ulong seed = 0)
    {
        int len = data.Length;
        int offset = 0;
        ulong h;
        if (len >= 32)
        {
            ulong v1 = seed + Prime1 + Prime2;
            ulong v2 = seed + Prime2;
            ulong v3 = seed;
            ulong v4 = seed - Prime1;
            int limit = len - 32;
            do
            {
                v1 = Round(v1, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(offset)));
                v2 = Round(v2, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(offset + 8)));
                v3 = Round(v3, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(offset + 16)));
                v4 = Round(v4, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(offset + 24)));
                offset += 32;
            }
            while (offset <= limit);
            h = BitOperations.RotateLeft(v1, 1) + BitOperations.RotateLeft(v2, 7)
              + BitOperations.RotateLeft(v3, 12) + BitOperations.RotateLeft(v4, 18);
            h = MergeRound(h, v1);
            h = MergeRound(h, v2);
            h = MergeRound(h, v3);
            h = MergeRound(h, v4);
        }
        else
        {
            h = seed + Prime5;
        }

        h += (ulong)len;
        while (offset + 8 <= len)
        {
            ulong k1 = Round(0, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(offset)));
            h ^= k1;
            h = BitOperations.RotateLeft(h, 27) * Prime1 + Prime4;
            offset += 8;
        }

        if (offset + 4 <= len)
        {
            h ^= BinaryPrimitives.ReadUInt32LittleEndian(data.Slice(offset)) * Prime1;
            h = BitOperations.RotateLeft(h, 23) * Prime2 + Prime3;
            offset += 4;
        }

        while (offset < len)
        {
            h ^= data[offset] * Prime5;
            h = BitOperations.RotateLeft(h, 11) * Prime1;
            offset++;
        }

        return Avalanche(h);
    }

    /// <summary>Hashes the UTF-8 bytes of a string (stack buffer for short strings, pooled otherwise).</summary>
    public static ulong HashString(ReadOnlySpan<char> text, ulong seed = 0)
    {
        int max = System.Text.Encoding.UTF8.GetMaxByteCount(text.Length);
        if (max <= 512)
        {
            Span<byte> buf = stackalloc byte[max];
            int n = System.Text.Encoding.UTF8.GetBytes(text, buf);
            return Hash(buf[..n], seed);
        }

        byte[] rented = System.Buffers.ArrayPool<byte>.Shared.Rent(max);
        try
        {
            int n = System.Text.Encoding.UTF8.GetBytes(text, rented);
            return Hash(rented.AsSpan(0, n), seed);
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Round(ulong acc, ulong input)
    {
        acc += input * Prime2;
        acc = BitOperations.RotateLeft(acc, 31);
        return acc * Prime1;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong MergeRound(ulong acc, ulong val)
    {
        val = Round(0, val);
        acc ^= val;
        return acc * Prime1 + Prime4;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Avalanche(ulong h)
    {
        h ^= h >> 33;
        h *= Prime2;
        h ^= h >> 29;
        h *= Prime3;
        h ^= h >> 32;
        return h;
    }
}
