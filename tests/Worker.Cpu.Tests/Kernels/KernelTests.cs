namespace Worker.Cpu.Tests.Kernels;

/// <summary>Every SIMD level of each kernel against a plain scalar loop, on lengths with and without tails.</summary>
public sealed unsafe class KernelTests
{
    public static TheoryData<CpuIsa> Isas()
    {
        var d = new TheoryData<CpuIsa>();
        foreach (var isa in CpuIsas.Supported()) d.Add(isa);
        return d;
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void DotF32_MatchesScalar(CpuIsa isa)
    {
        var rng = new Random(1);
        foreach (int n in new[] { 1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100, 2048 })
        {
            var a = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var b = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            double expected = 0;
            for (int i = 0; i < n; i++) expected += (double)a[i] * b[i];
            fixed (float* pa = a, pb = b)
                Assert.True(Math.Abs(Dot.F32(pa, pb, n, isa) - expected) < 1e-5 * n, $"n={n}");
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void DotQ8_MatchesScalarIntegerDot(CpuIsa isa)
    {
        var rng = new Random(2);
        foreach (int blocks in new[] { 1, 2, 3, 64, 65 })
        {
            int n = blocks * 32;
            var wq = Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
            var xq = Enumerable.Range(0, n).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
            var wd = Enumerable.Range(0, blocks).Select(_ => (float)rng.NextDouble() * 0.01f).ToArray();
            var xd = Enumerable.Range(0, blocks).Select(_ => (float)rng.NextDouble() * 0.01f).ToArray();
            double expected = 0;
            for (int i = 0; i < n; i++) expected += (double)wq[i] * xq[i] * wd[i / 32] * xd[i / 32];
            fixed (sbyte* pw = wq, px = xq)
            fixed (float* pwd = wd, pxd = xd)
            {
                float got = Dot.Q8(pw, pwd, px, pxd, blocks, isa);
                Assert.True(Math.Abs(got - expected) <= 1e-4 * Math.Max(1, Math.Abs(expected)), $"blocks={blocks}: {got} vs {expected}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void FourTokenAndFusedF16Kernels_AreBitIdenticalToOneTokenF32Kernels(CpuIsa isa)
    {
        var rng = new Random(4);
        foreach (int n in new[] { 32, 96, 2048, 2080 })
        {
            var w = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var x = Enumerable.Range(0, 4 * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var wq = new sbyte[n]; var wd = new float[n / 32];
            var xq = new sbyte[4 * n]; var xd = new float[4 * n / 32];
            var four = new float[4];
            fixed (float* pw = w, px = x, pwd = wd, pxd = xd, pf = four)
            fixed (sbyte* pwq = wq, pxq = xq)
            {
                Q8.QuantizeRow(pw, n, pwq, pwd);
                for (int t = 0; t < 4; t++) Q8.QuantizeRow(px + t * n, n, pxq + t * n, pxd + t * n / 32);
                var half = w.Select(v => (Half)v).ToArray();
                var widened = new float[n];
                fixed (Half* ph = half)
                fixed (float* pwide = widened)
                {
                    Dot.HalfToSingle(ph, pwide, n, isa);
                    Assert.Equal(Dot.F32(pwide, px, n, isa), Dot.F16(ph, px, n, isa, pwide));
                }
                Dot.F32x4(pw, px, n, n, isa, pf);
                for (int t = 0; t < 4; t++) Assert.Equal(Dot.F32(pw, px + t * n, n, isa), four[t]);
                if (isa < CpuIsa.Avx2) continue;
                Dot.Q8x4(pwq, pwd, pxq, pxd, n, n / 32, n / 32, pf);
                for (int t = 0; t < 4; t++) Assert.Equal(Dot.Q8(pwq, pwd, pxq + t * n, pxd + t * n / 32, n / 32, isa), four[t]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void HalfToSingle_IsExactForNormalsSubnormalsZerosAndBothSigns(CpuIsa isa)
    {
        // Every finite f16 bit pattern (inf/NaN excluded), plus a ragged tail.
        var halves = Enumerable.Range(0, 65536).Select(b => BitConverter.UInt16BitsToHalf((ushort)b)).Where(Half.IsFinite).Append((Half)0.5f).ToArray();
        var got = new float[halves.Length];
        fixed (Half* ph = halves)
        fixed (float* pg = got)
            Dot.HalfToSingle(ph, pg, halves.Length, isa);
        for (int i = 0; i < halves.Length; i++)
            Assert.Equal(BitConverter.SingleToInt32Bits((float)halves[i]), BitConverter.SingleToInt32Bits(got[i]));
    }

    [Fact]
    public void Q8Quantize_RoundTripsWithinHalfAStep_AndUsesTheFullRange()
    {
        var rng = new Random(3);
        var x = Enumerable.Range(0, 32).Select(_ => (float)(rng.NextDouble() * 8 - 4)).ToArray();
        var q = new sbyte[32];
        float d = Q8.QuantizeBlock(x, q);
        Assert.Equal(x.Max(MathF.Abs) / 127f, d, 6);
        Assert.Contains(q, v => Math.Abs((int)v) == 127);
        var back = new float[32];
        Q8.Dequantize(q, [d], back);
        for (int i = 0; i < 32; i++) Assert.True(MathF.Abs(back[i] - x[i]) <= d * 0.5f + 1e-6f);
        Assert.Equal(0f, Q8.QuantizeBlock(new float[32], q));
        Assert.All(q, v => Assert.Equal(0, v));
    }

    [Fact]
    public void Rope_RotatesAdjacentPairsByPositionTimesThetaPower()
    {
        const int hd = 8;
        var table = Ops.RopeTable(16, hd, 10000f);
        var x = Enumerable.Range(0, 2 * hd).Select(i => (float)(i + 1)).ToArray();
        var expected = (float[])x.Clone();
        int pos = 5;
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < hd / 2; i++)
            {
                double theta = pos * Math.Pow(10000, -2.0 * i / hd);
                double a = x[h * hd + 2 * i], b = x[h * hd + 2 * i + 1];
                expected[h * hd + 2 * i] = (float)(a * Math.Cos(theta) - b * Math.Sin(theta));
                expected[h * hd + 2 * i + 1] = (float)(a * Math.Sin(theta) + b * Math.Cos(theta));
            }
        fixed (float* px = x, pt = table) Ops.Rope(px, 2, hd, pt + pos * hd);
        for (int i = 0; i < x.Length; i++) Assert.Equal(expected[i], x[i], 4);
    }

    [Fact]
    public void WorkerGang_RunsEveryItemExactlyOnce_AcrossManyRuns()
    {
        using var gang = new WorkerGang(3);
        var hits = new int[97];
        Action<int, int> body = (i, worker) => { Assert.InRange(worker, 0, 2); Interlocked.Increment(ref hits[i]); };
        for (int run = 0; run < 200; run++) gang.Run(1 + run % hits.Length, body);
        for (int i = 0; i < hits.Length; i++)
            Assert.Equal(Enumerable.Range(0, 200).Count(run => i < 1 + run % hits.Length), hits[i]);
    }
}
