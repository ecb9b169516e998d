using System.Runtime.Intrinsics.X86;

namespace Worker.Cpu;

/// <summary>
/// Kernel instruction-set level, picked once per runner (not a global, so tests can run both paths side by side).
/// <see cref="Portable"/> is Vector128 (any SIMD the JIT accelerates, incl. Arm64) with scalar tails and scalar int8
/// dots; <see cref="Avx2"/> adds 256-bit FMA and the int8 maddubs (or AVX-VNNI) dot; <see cref="Avx512"/> uses
/// 512-bit FMA for the float kernels.
/// </summary>
public enum CpuIsa
{
    Portable = 0,
    Avx2 = 1,
    Avx512 = 2,
}

public static class CpuIsas
{
    public static CpuIsa Best { get; } =
        Avx512F.IsSupported && Avx512BW.IsSupported && Fma.IsSupported ? CpuIsa.Avx512
        : Avx2.IsSupported && Fma.IsSupported ? CpuIsa.Avx2
        : CpuIsa.Portable;

    /// <summary>AVX-VNNI (vpdpbusd on 256-bit vectors) for the int8 dot; otherwise maddubs + madd.</summary>
    public static bool Vnni { get; } = AvxVnni.IsSupported;

    public static bool IsSupported(CpuIsa isa) => isa <= Best;

    /// <summary>Every level this machine runs, lowest first (for tests comparing paths).</summary>
    public static IEnumerable<CpuIsa> Supported() => Enum.GetValues<CpuIsa>().Where(IsSupported);
}
