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

    /// <summary>A GGUF Q8_0 matrix (row-major blocks of f16 scale + 32 int8) with random quants and scales.</summary>
    private static byte[] GgufQ8(Random rng, int rows, int cols)
    {
        var raw = new byte[rows * cols / 32 * 34];
        for (int b = 0; b < raw.Length / 34; b++)
        {
            BitConverter.TryWriteBytes(raw.AsSpan(b * 34), (Half)(rng.NextDouble() * 0.01));
            for (int i = 0; i < 32; i++) raw[b * 34 + 2 + i] = (byte)(sbyte)rng.Next(-127, 128);
        }
        return raw;
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Q8Gemm_MatchesScalarDots_ForRaggedRowsAndAnyTokenCount(CpuIsa isa)
    {
        var rng = new Random(2);
        foreach (var (rows, blocks) in new[] { (37, 1), (16, 3), (5, 64), (48, 65) })
        {
            int cols = blocks * 32, tiles = Q8Gemm.Tiles(rows);
            var raw = GgufQ8(rng, rows, cols);
            var quants = new sbyte[tiles * 16 * cols];
            var scales = new Half[tiles * 16 * blocks];
            foreach (int tokens in new[] { 1, 4, 6 })
            {
                var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
                var xq = new sbyte[x.Length];
                var xd = new float[x.Length / 32];
                var xn = new sbyte[x.Length];
                var y = Enumerable.Repeat(float.NaN, tokens * (rows + 3)).ToArray();
                fixed (byte* pr = raw)
        fixed (sbyte* pq = quants)
                fixed (Half* ps = scales)
                fixed (float* px = x, pxd = xd, py = y)
                fixed (sbyte* pxq = xq, pxn = xn)
                {
                    Q8Gemm.Pack(pr, rows, cols, pq, ps);
                    for (int t = 0; t < tokens; t++) Q8.QuantizeRow(px + t * cols, cols, pxq + t * cols, pxd + t * blocks, pxn + t * cols);
                    Q8Gemm.Rows(pq, ps, rows, cols, 0, tiles, pxq, pxn, pxd, tokens, py, rows + 3, isa);
                    for (int t = 0; t < tokens; t++)
                    {
                        for (int r = 0; r < rows; r++)
                        {
                            double expected = 0;
                            for (int c = 0; c < cols; c++)
                            {
                                var (q, d) = Q8Gemm.At(pq, ps, cols, r, c);
                                Assert.Equal((sbyte)raw[(r * blocks + c / 32) * 34 + 2 + c % 32], q);
                                expected += (double)q * d * xq[t * cols + c] * xd[t * blocks + c / 32];
                            }
                            float got = y[t * (rows + 3) + r];
                            Assert.True(Math.Abs(got - expected) <= 1e-5 * Math.Max(1, Math.Abs(expected)), $"rows={rows} blocks={blocks} t={t} r={r}: {got} vs {expected}");
                        }
                        for (int r = rows; r < rows + 3; r++) Assert.True(float.IsNaN(y[t * (rows + 3) + r]), "padding rows are not written");
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void Q8Gemm_FourTokenTile_IsBitIdenticalToOneTokenAtATime_AndToPortable(CpuIsa isa)
    {
        var rng = new Random(5);
        const int rows = 40, blocks = 7, cols = blocks * 32, tokens = 5;
        var raw = GgufQ8(rng, rows, cols);
        var quants = new sbyte[Q8Gemm.Tiles(rows) * 16 * cols];
        var scales = new Half[Q8Gemm.Tiles(rows) * 16 * blocks];
        var x = Enumerable.Range(0, tokens * cols).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var xq = new sbyte[x.Length]; var xd = new float[x.Length / 32]; var xn = new sbyte[x.Length];
        var all = new float[tokens * rows]; var one = new float[rows];
        fixed (byte* pr = raw)
        fixed (sbyte* pq = quants)
        fixed (Half* ps = scales)
        fixed (float* px = x, pxd = xd, pa = all, po = one)
        fixed (sbyte* pxq = xq, pxn = xn)
        {
            Q8Gemm.Pack(pr, rows, cols, pq, ps);
            for (int t = 0; t < tokens; t++) Q8.QuantizeRow(px + t * cols, cols, pxq + t * cols, pxd + t * blocks, pxn + t * cols);
            Q8Gemm.Rows(pq, ps, rows, cols, 0, Q8Gemm.Tiles(rows), pxq, pxn, pxd, tokens, pa, rows, isa);
            for (int t = 0; t < tokens; t++)
            {
                Q8Gemm.Rows(pq, ps, rows, cols, 0, Q8Gemm.Tiles(rows), pxq + t * cols, pxn + t * cols, pxd + t * blocks, 1, po, rows, isa);
                for (int r = 0; r < rows; r++) Assert.Equal(one[r], all[t * rows + r]);
            }
            // Every ISA level computes the same int32 block dots and the same fused multiply-adds.
            Q8Gemm.Rows(pq, ps, rows, cols, 0, Q8Gemm.Tiles(rows), pxq, pxn, pxd, tokens, pa, rows, CpuIsa.Portable);
            for (int t = 0; t < tokens; t++)
            {
                Q8Gemm.Rows(pq, ps, rows, cols, 0, Q8Gemm.Tiles(rows), pxq + t * cols, pxn + t * cols, pxd + t * blocks, 1, po, rows, isa);
                for (int r = 0; r < rows; r++) Assert.Equal(all[t * rows + r], one[r]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Isas))]
    public void FourTokenF32AndFusedF16Kernels_AreBitIdenticalToOneTokenF32Kernels(CpuIsa isa)
    {
        var rng = new Random(4);
        foreach (int n in new[] { 32, 96, 2048, 2080 })
        {
            var w = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var x = Enumerable.Range(0, 4 * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var four = new float[4];
            fixed (float* pw = w, px = x, pf = four)
            {
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
        var q2 = new sbyte[32]; var nq = new sbyte[32]; var d2 = new float[1];
        fixed (float* px = x, pd = d2)
        fixed (sbyte* pq = q2, pn = nq)
            Q8.QuantizeRow(px, 32, pq, pd, pn);
        Assert.Equal(d, d2[0]);
        Assert.Equal(q, q2);
        Assert.Equal(q.Select(v => (sbyte)-v), nq);
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
