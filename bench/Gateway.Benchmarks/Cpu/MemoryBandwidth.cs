using System.Diagnostics;
using System.Numerics.Tensors;

namespace Gateway.Benchmarks.Cpu;

/// <summary>
/// STREAM-like bandwidth probe: a buffer much larger than the caches is summed (read) and copied by
/// <c>threads</c> threads, each on its own slice; the median of 7 passes after one warm-up. The read figure is the
/// roofline for decode, which streams every weight once per token.
/// </summary>
internal static class MemoryBandwidth
{
    public sealed record Result(int Threads, int MegaBytes, double ReadGBps, double CopyGBps);

    public static Result Measure(int threads, int megaBytes)
    {
        int n = megaBytes * (1 << 20) / sizeof(float);
        var src = GC.AllocateUninitializedArray<float>(n);
        var dst = GC.AllocateUninitializedArray<float>(n);
        src.AsSpan().Fill(1f);
        dst.AsSpan().Fill(0f);
        double Pass(bool copy)
        {
            var sw = Stopwatch.StartNew();
            var ts = Enumerable.Range(0, threads).Select(t => new Thread(() =>
            {
                int len = n / threads, start = t * len;
                if (copy) src.AsSpan(start, len).CopyTo(dst.AsSpan(start, len));
                else if (TensorPrimitives.Sum(src.AsSpan(start, len)) < 0) throw new InvalidOperationException();
            })).ToArray();
            foreach (var th in ts) th.Start();
            foreach (var th in ts) th.Join();
            return sw.Elapsed.TotalSeconds;
        }
        double Median(bool copy)
        {
            Pass(copy);
            var s = Enumerable.Range(0, 7).Select(_ => Pass(copy)).Order().ToArray();
            return s[3];
        }
        double bytes = (double)n * sizeof(float);
        return new Result(threads, megaBytes, bytes / Median(false) / 1e9, 2 * bytes / Median(true) / 1e9);
    }
}
