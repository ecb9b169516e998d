using System.Runtime.InteropServices;

namespace Worker.Cpu;

/// <summary>
/// Large weight buffers on 2 MiB-aligned memory advised as transparent huge pages (Linux, where THP is "madvise"):
/// a decode step streams every weight once, and 2 MiB pages cut its TLB misses 512-fold. Elsewhere, or when the
/// kernel declines, the memory is ordinary pages. WORKER_CPU_HUGE_PAGES=0 turns the advice off.
/// </summary>
internal static unsafe partial class HugePages
{
    private const int MadvHugePage = 14;
    private const nuint HugePage = 2 << 20;

    public static bool Enabled { get; } = Environment.GetEnvironmentVariable("WORKER_CPU_HUGE_PAGES") != "0";

    public static void* Alloc(long bytes)
    {
        nuint size = (nuint)Math.Max(bytes, 64);
        if (!OperatingSystem.IsLinux() || size < HugePage) return NativeMemory.AlignedAlloc(size, 64);
        size = (size + HugePage - 1) & ~(HugePage - 1);
        void* p = NativeMemory.AlignedAlloc(size, HugePage);
        if (Enabled) _ = Madvise(p, size, MadvHugePage); // advisory: failure leaves ordinary pages
        return p;
    }

    [LibraryImport("libc", EntryPoint = "madvise")]
    private static partial int Madvise(void* addr, nuint length, int advice);
}
