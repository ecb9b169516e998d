using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json;
using Worker.Cpu;

namespace Gateway.Benchmarks.Cpu;

/// <summary>
/// Console commands for the CPU backend (not BenchmarkDotNet runs):
///   cpu-gguf --out FILE [--vocab 32000 --dim 2048 --layers 4 --heads 32 --kv-heads 8 --hidden 5632 --ctx 4096 --type q8_0 --seed 1]
///   membw [--threads 2] [--mb 512]          read and copy bandwidth, median of 7 passes
///   gpu-time --model FILE [--prompt-len 32 --context 512 --reps 20 --peak-gbps 3350]   the GPU backend on the first CUDA device (GpuTimeCommand)
///   cpu-time --model FILE [--threads 1 --prompt-len 32 --reps 5 --isa avx512]   median prefill and decode-step ms (wall and CPU) of this backend alone
///   cpu-peer --model FILE [--threads 2 --prompt-len 32 --decode 32 --rounds 1 --markdown FILE.md --label TEXT --node node --script scripts/llamacpp-peer/peer.mjs]
///       runs this backend and llama.cpp (node-llama-cpp) on the same GGUF, prompt and threads, back to back in each
///       round, and prints next-token agreement (llama.cpp teacher-forced on our greedy sequence), the first-step
///       logit difference, per round decode tokens/s, prompt ms and CPU ms of both, the median ratios and the
///       bandwidth roofline; --markdown appends the rounds as a table to FILE.md.
/// </summary>
internal static class CpuCommands
{
    public static bool TryRun(string[] args, out int exitCode)
    {
        exitCode = 0;
        if (args.Length == 0 || args[0] is not ("cpu-gguf" or "membw" or "cpu-peer" or "cpu-time" or "gpu-time")) return false;
        var opts = Options(args[1..]);
        switch (args[0])
        {
            case "cpu-gguf": exitCode = WriteGguf(opts); return true;
            case "membw": Console.WriteLine(JsonSerializer.Serialize(MemoryBandwidth.Measure(Int(opts, "threads", 2), Int(opts, "mb", 512)))); return true;
            case "cpu-peer": exitCode = Peer(opts); return true;
            case "cpu-time": exitCode = Time(opts); return true;
            case "gpu-time": exitCode = GpuTimeCommand.Run(opts); return true;
            default: return false;
        }
    }

    private static int WriteGguf(Dictionary<string, string> o)
    {
        var shape = new LlamaShape(Int(o, "vocab", 32000), Int(o, "dim", 2048), Int(o, "layers", 4), Int(o, "heads", 32),
            Int(o, "kv-heads", 8), Int(o, "hidden", 5632), Int(o, "ctx", 4096));
        var type = Enum.Parse<GgufTensorType>(o.GetValueOrDefault("type", "Q8_0"), ignoreCase: true);
        var sw = Stopwatch.StartNew();
        RandomLlamaGguf.Write(o["out"], shape, Int(o, "seed", 1), type);
        Console.WriteLine($"wrote {o["out"]}: {shape} {type}, {new FileInfo(o["out"]).Length / 1e6:F1} MB in {sw.Elapsed.TotalSeconds:F1} s");
        return 0;
    }

    private static int Peer(Dictionary<string, string> o)
    {
        string modelPath = o["model"];
        int threads = Int(o, "threads", 2), promptLen = Int(o, "prompt-len", 32), decode = Int(o, "decode", 32), rounds = Int(o, "rounds", 1);
        using var model = LlamaModel.Load(modelPath);
        var c = model.Config;
        var rng = new Random(Int(o, "seed", 1));
        var prompt = new int[promptLen];
        prompt[0] = c.BosToken;
        for (int i = 1; i < promptLen; i++) prompt[i] = rng.Next(3, c.Vocab);

        // This backend: prompt as one chunk, then greedy decode, one token per step.
        const int blockSize = 16;
        int blocks = (promptLen + decode + blockSize) / blockSize + 1;
        var pool = new KvPool(c, blocks, blockSize);
        using var runner = new LlamaRunner(model, pool, promptLen, threads);
        var table = Enumerable.Range(0, blocks).ToArray();
        var logits = new float[c.Vocab];
        var proc = Process.GetCurrentProcess();
        var one = new int[1];
        float[] firstLogits = [];
        List<int> ours = [];
        OursRun RunOurs()
        {
            proc.Refresh();
            var cpu0 = proc.TotalProcessorTime;
            var sw = Stopwatch.StartNew();
            runner.Forward([new SeqChunk(prompt, 0, table, true)], logits);
            double promptMs = sw.Elapsed.TotalMilliseconds;
            proc.Refresh();
            var cpu1 = proc.TotalProcessorTime;
            firstLogits = (float[])logits.Clone();
            ours = [ArgMax(logits)];
            long d0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < decode; i++)
            {
                one[0] = ours[^1];
                runner.Forward([new SeqChunk(one, promptLen + i, table, true)], logits);
                ours.Add(ArgMax(logits));
            }
            double decodeMs = Stopwatch.GetElapsedTime(d0).TotalMilliseconds;
            proc.Refresh();
            return new OursRun(promptMs, (cpu1 - cpu0).TotalMilliseconds, decode / (decodeMs / 1000), (proc.TotalProcessorTime - cpu1).TotalMilliseconds / decode);
        }
        // Warm-up (JIT, page cache, allocator), as a server would be; then each round runs ours and llama.cpp back to
        // back, so both see the same moment of a shared machine's load.
        RunOurs();
        var roundsOut = new List<PeerRound>();
        var ratios = new List<(double Decode, double Prompt, double DecodeCpu, double PromptCpu)>();
        JsonDocument? peer = null;
        for (int round = 0; round < rounds; round++)
        {
            string load = LoadAverage();
            var us = RunOurs();
            peer?.Dispose();
            peer = RunPeer(o, modelPath, threads, prompt, ours.Take(decode));
            if (peer is null) return 1;
            var r = peer.RootElement;
            double peerTps = r.GetProperty("decodeTokensPerSecond").GetDouble(), peerPromptMs = r.GetProperty("promptMs").GetDouble();
            double peerDecodeCpu = r.GetProperty("decodeCpuMsPerToken").GetDouble(), peerPromptCpu = r.GetProperty("promptCpuMs").GetDouble();
            ratios.Add((us.DecodeTokPerS / peerTps, peerPromptMs / us.PromptMs, peerDecodeCpu / us.DecodeCpuMsPerToken, peerPromptCpu / us.PromptCpuMs));
            roundsOut.Add(new PeerRound(load, us.DecodeTokPerS, peerTps, us.DecodeTokPerS / peerTps, us.PromptMs, peerPromptMs, peerPromptMs / us.PromptMs,
                us.DecodeCpuMsPerToken, peerDecodeCpu, us.PromptCpuMs, peerPromptCpu));
        }
        var last = peer!.RootElement;
        var peerLogits = last.GetProperty("firstLogits").EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
        var peerNext = last.GetProperty("teacherForced").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int agree = ours.Zip(peerNext).Count(p => p.First == p.Second);

        float maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < c.Vocab; i++)
        {
            maxDiff = MathF.Max(maxDiff, MathF.Abs(firstLogits[i] - peerLogits[i]));
            maxAbs = MathF.Max(maxAbs, MathF.Abs(peerLogits[i]));
        }
        var bw = MemoryBandwidth.Measure(threads, 512);
        double roofline = bw.ReadGBps * 1e9 / model.WeightBytes;
        double Median(IEnumerable<double> v) { var a = v.Order().ToArray(); return a.Length % 2 == 1 ? a[a.Length / 2] : (a[a.Length / 2 - 1] + a[a.Length / 2]) / 2; }
        var report = new
        {
            model = Path.GetFileName(modelPath),
            config = c.ToString(),
            weightType = model.WeightType.ToString(),
            weightMB = model.WeightBytes / 1e6,
            threads,
            isa = runner.Isa.ToString(),
            avxVnni = CpuIsas.Vnni,
            promptTokens = promptLen,
            decodeSteps = decode,
            nextTokenAgreement = $"{agree}/{ours.Count} ({100.0 * agree / ours.Count:F1}%)",
            firstStepMaxAbsLogitDiffOverMaxLogit = maxDiff / maxAbs,
            firstStepMaxAbsLogitDiff = maxDiff,
            top5Same = Top(firstLogits, 5).SequenceEqual(Top(peerLogits, 5)),
            rounds = roundsOut,
            medianDecodeRatio = Median(ratios.Select(x => x.Decode)),
            medianPromptSpeedRatio = Median(ratios.Select(x => x.Prompt)),
            medianDecodeCpuRatio = Median(ratios.Select(x => x.DecodeCpu)),
            medianPromptCpuRatio = Median(ratios.Select(x => x.PromptCpu)),
            readBandwidthGBps = bw.ReadGBps,
            rooflineTokPerS = roofline,
        };
        peer.Dispose();
        Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        if (o.TryGetValue("markdown", out var md))
        {
            // One table per run, appended: the figures docs quote, next to the command that made them.
            var sb = new System.Text.StringBuilder();
            sb.AppendLine(CultureInfo.InvariantCulture, $"### {o.GetValueOrDefault("label", Path.GetFileName(modelPath))}");
            sb.AppendLine();
            sb.AppendLine(CultureInfo.InvariantCulture, $"`Gateway.Benchmarks cpu-peer --model {Path.GetFileName(modelPath)} --threads {threads} --prompt-len {promptLen} --decode {decode} --rounds {rounds}` " +
                $"({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, ISA {runner.Isa}, AVX-VNNI {CpuIsas.Vnni}, huge pages {(HugePagesEnabled ? "on" : "off")}; " +
                $"agreement {report.nextTokenAgreement}, first-step max|Δlogit|/max|logit| {report.firstStepMaxAbsLogitDiffOverMaxLogit:P2})");
            sb.AppendLine();
            sb.AppendLine("| round | load avg | ours decode tok/s | llama.cpp decode tok/s | ratio | ours prompt ms | llama.cpp prompt ms | prompt speed ratio | ours CPU ms/token | llama.cpp CPU ms/token | ours prompt CPU ms | llama.cpp prompt CPU ms |");
            sb.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            int n = 0;
            foreach (var r in roundsOut)
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {++n} | {r.loadAverage} | {r.oursDecodeTokPerS:F1} | {r.peerDecodeTokPerS:F1} | {r.decodeRatio:F2} | {r.oursPromptMs:F0} | {r.peerPromptMs:F0} | {r.promptSpeedRatio:F2} | {r.oursDecodeCpuMsPerToken:F1} | {r.peerDecodeCpuMsPerToken:F1} | {r.oursPromptCpuMs:F0} | {r.peerPromptCpuMs:F0} |");
            sb.AppendLine(CultureInfo.InvariantCulture, $"| **median ratio** | | | | **{report.medianDecodeRatio:F2}** | | | **{report.medianPromptSpeedRatio:F2}** | CPU ratio **{report.medianDecodeCpuRatio:F2}** | | CPU ratio **{report.medianPromptCpuRatio:F2}** | |");
            sb.AppendLine();
            File.AppendAllText(md, sb.ToString());
        }
        return 0;
    }

    private static bool HugePagesEnabled => Environment.GetEnvironmentVariable("WORKER_CPU_HUGE_PAGES") != "0";

#pragma warning disable IDE1006, SA1300 // camelCase members: they are the JSON report's field names
    private sealed record PeerRound(string loadAverage, double oursDecodeTokPerS, double peerDecodeTokPerS, double decodeRatio, double oursPromptMs,
        double peerPromptMs, double promptSpeedRatio, double oursDecodeCpuMsPerToken, double peerDecodeCpuMsPerToken, double oursPromptCpuMs, double peerPromptCpuMs);
#pragma warning restore IDE1006, SA1300

    private readonly record struct OursRun(double PromptMs, double PromptCpuMs, double DecodeTokPerS, double DecodeCpuMsPerToken);

    /// <summary>llama.cpp on the same file, prompt and threads, fed our greedy tokens (teacher forcing).</summary>
    private static JsonDocument? RunPeer(Dictionary<string, string> o, string modelPath, int threads, int[] prompt, IEnumerable<int> force)
    {
        var psi = new ProcessStartInfo(o.GetValueOrDefault("node", "node"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { o.GetValueOrDefault("script", "scripts/llamacpp-peer/peer.mjs"), "--model", modelPath, "--threads", threads.ToString(CultureInfo.InvariantCulture),
                     "--prompt", string.Join(",", prompt), "--force", string.Join(",", force) })
            psi.ArgumentList.Add(a);
        using var node = Process.Start(psi)!;
        var stderr = node.StandardError.ReadToEndAsync();
        string stdout = node.StandardOutput.ReadToEnd();
        node.WaitForExit();
        if (node.ExitCode != 0) { Console.Error.WriteLine($"peer failed ({node.ExitCode}): {stderr.Result}"); return null; }
        return JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
    }

    private static int Time(Dictionary<string, string> o)
    {
        int threads = Int(o, "threads", 1), promptLen = Int(o, "prompt-len", 32), reps = Int(o, "reps", 5);
        using var model = LlamaModel.Load(o["model"]);
        var c = model.Config;
        const int blockSize = 16;
        int blocks = promptLen / blockSize + 2;
        var pool = new KvPool(c, blocks, blockSize);
        var isa = o.TryGetValue("isa", out var isaName) ? Enum.Parse<CpuIsa>(isaName, ignoreCase: true) : CpuIsas.Best;
        using var runner = new LlamaRunner(model, pool, promptLen, threads, isa);
        var table = Enumerable.Range(0, blocks).ToArray();
        var prompt = Enumerable.Range(0, promptLen).Select(i => 3 + i * 7919 % (c.Vocab - 3)).ToArray();
        var logits = new float[c.Vocab];
        var one = new[] { 5 };
        // Wall-clock median, and the process's CPU time per run: on a loaded machine the latter does not count the time
        // spent waiting for a core, so it is the steadier figure for comparing kernels (it still feels cache and
        // memory-bandwidth contention).
        var proc = Process.GetCurrentProcess();
        (double Wall, double Cpu) Median(Action a)
        {
            a();
            var t = new double[reps];
            proc.Refresh();
            var cpu0 = proc.TotalProcessorTime;
            for (int i = 0; i < reps; i++) { long t0 = Stopwatch.GetTimestamp(); a(); t[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds; }
            proc.Refresh();
            Array.Sort(t);
            return (t[reps / 2], (proc.TotalProcessorTime - cpu0).TotalMilliseconds / reps);
        }
        var prefill = Median(() => runner.Forward([new SeqChunk(prompt, 0, table, true)], logits));
        var decode = Median(() => runner.Forward([new SeqChunk(one, promptLen, table, true)], logits));
        Console.WriteLine($"threads {threads} isa {runner.Isa}: prefill {promptLen} tokens {prefill.Wall:F1} ms ({promptLen / prefill.Wall * 1000:F0} tok/s, cpu {prefill.Cpu:F1} ms), " +
            $"decode step {decode.Wall:F2} ms ({1000 / decode.Wall:F1} tok/s, cpu {decode.Cpu:F2} ms), median of {reps}; load average {LoadAverage()}");
        return 0;
    }

    internal static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";

    private static int[] Top(float[] x, int k) => Enumerable.Range(0, x.Length).OrderByDescending(i => x[i]).Take(k).ToArray();

    private static int ArgMax(ReadOnlySpan<float> x) => TensorPrimitives.IndexOfMax(x);

    private static int Int(Dictionary<string, string> o, string key, int fallback) =>
        o.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    private static Dictionary<string, string> Options(string[] args)
    {
        var d = new Dictionary<string, string>();
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"expected --option, got '{args[i]}'");
            d[args[i][2..]] = args[i + 1];
        }
        return d;
    }
}
