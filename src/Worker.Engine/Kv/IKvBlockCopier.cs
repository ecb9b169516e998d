namespace Worker.Engine;

/// <summary>
/// A backend that really moves K/V between its device pool and a host tier (the CPU backend's
/// <c>Worker.Cpu.KvHostStore</c>): the block manager calls it where the engine model only moves hashes. Every call happens
/// on the engine loop between steps, so a copied-in block is complete before any step reads it.
/// </summary>
public interface IKvBlockCopier
{
    /// <summary>Pool block <paramref name="block"/> (holding the K/V of <paramref name="hash"/>) is written to the host tier, before the block is reused.</summary>
    void CopyOut(int block, ulong hash);

    /// <summary>The host copy of <paramref name="hash"/> is written into pool block <paramref name="block"/> (a reload or a prefetch).</summary>
    void CopyIn(ulong hash, int block);

    /// <summary>The host tier dropped <paramref name="hash"/>.</summary>
    void Forget(ulong hash);

    /// <summary>The host tier was cleared.</summary>
    void Clear();
}
