using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Llm.Prompt.Hashing;

/// <summary>
/// Chained KV-block hashes, as vLLM's prefix cache names blocks: block i's hash covers the hash of
/// block i-1, a per-tenant salt and block i's tokens, so one hash names a whole prefix and two
/// tenants with different salts never share (or can probe) each other's blocks.
/// <para>hash_i = XXH64(le64(hash_{i-1}) ‖ le64(salt) ‖ le32(token_0) … le32(token_{B-1}), seed: 0), hash_{-1} = <see cref="Root"/>.</para>
/// Only full blocks are hashed (a partial tail block is never cached, as in vLLM).
/// Allocation-free: block bytes are assembled in a stack buffer.
/// </summary>
public static class BlockHasher
{
    /// <summary>Default block size in tokens (vLLM's default).</summary>
    public const int DefaultBlockSize = 16;

    /// <summary>Parent hash of the first block of every chain.</summary>
    public const ulong Root = 0xCBF29CE484222325UL;

    /// <summary>Largest block size accepted (stack buffer bound).</summary>
    public const int MaxBlockSize = 1024;

    /// <summary>Number of full blocks in a prompt of <paramref name="tokenCount"/> tokens.</summary>
    public static int FullBlocks(int tokenCount, int blockSize) => tokenCount / blockSize;

    /// <summary>Derives a 64-bit salt from a tenant's salt string (empty → 0, i.e. unsalted).</summary>
    public static ulong SaltOf(string? salt) => string.IsNullOrEmpty(salt) ? 0UL : TextHash.Utf8XxHash64(salt, 0x5A17UL);

    /// <summary>Hash of one block given its parent's hash.</summary>
    public static ulong HashBlock(ulong parent, ulong salt, ReadOnlySpan<int> blockTokens)
    {
        if (blockTokens.Length > MaxBlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(blockTokens), "block larger than MaxBlockSize");
        }

        Span<byte> buf = stackalloc byte[16 + blockTokens.Length * 4];
        BinaryPrimitives.WriteUInt64LittleEndian(buf, parent);
        BinaryPrimitives.WriteUInt64LittleEndian(buf[8..], salt);
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(blockTokens).CopyTo(buf[16..]);
        }
        else
        {
            for (int i = 0; i < blockTokens.Length; i++)
            {
                BinaryPrimitives.WriteInt32LittleEndian(buf[(16 + i * 4)..], blockTokens[i]);
            }
        }

        return System.IO.Hashing.XxHash64.HashToUInt64(buf);
    }

    /// <summary>
    /// Hash of a synthetic block named by an external id (trace hash ids): used when a trace carries block ids
    /// rather than tokens. Sub-block <paramref name="part"/> of a coarser trace block maps onto engine blocks.
    /// </summary>
    public static ulong HashSynthetic(ulong parent, ulong salt, long externalId, int part)
    {
        Span<int> pseudo = stackalloc int[3];
        pseudo[0] = (int)(externalId & 0xFFFFFFFF);
        pseudo[1] = (int)(externalId >> 32);
        pseudo[2] = part;
        return HashBlock(parent, salt, pseudo);
    }

    /// <summary>
    /// Writes the chained hashes of every full block of <paramref name="tokens"/> into <paramref name="destination"/>
    /// and returns how many were written (min of full blocks and destination length).
    /// </summary>
    public static int ComputeChain(ReadOnlySpan<int> tokens, ulong salt, int blockSize, Span<ulong> destination)
    {
        if (blockSize <= 0 || blockSize > MaxBlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize));
        }

        int blocks = Math.Min(tokens.Length / blockSize, destination.Length);
        ulong parent = Root;
        for (int i = 0; i < blocks; i++)
        {
            parent = HashBlock(parent, salt, tokens.Slice(i * blockSize, blockSize));
            destination[i] = parent;
        }

        return blocks;
    }

    /// <summary>Convenience: allocates the hash array for a prompt.</summary>
    public static ulong[] ComputeChain(ReadOnlySpan<int> tokens, ulong salt, int blockSize = DefaultBlockSize)
    {
        var result = new ulong[FullBlocks(tokens.Length, blockSize)];
        ComputeChain(tokens, salt, blockSize, result);
        return result;
    }
}
