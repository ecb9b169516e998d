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
///   cpu-time --model FILE [--threads 1 --prompt-len 32 --reps 5]   median prefill and decode-step ms of this backend alone
///   cpu-peer --model FILE [--threads 2 --prompt-len 32 --decode 32 --node node --script scripts/llamacpp-peer/peer.mjs]
///       runs this backend and llama.cpp (node-llama-cpp) on the same GGUF, prompt and threads, one after the other,
///       and prints next-token agreement (llama.cpp teacher-forced on our greedy sequence), the first-step logit
///       difference, decode tokens/s of both and the bandwidth roofline.
/// </summary>
internal static class CpuCommands
{
    public static bool TryRun(string[] args, out int exitCode)
    {
        exitCode = 0;
        if (args.Length == 0 || args[0] is not ("cpu-gguf" or "membw" or "cpu-peer" or "cpu-time")) return false;
        var opts = Options(args[1..]);
        switch (args[0])
        {
            case "cpu-gguf": exitCode = WriteGguf(opts); return true;
            case "membw": Console.WriteLine(JsonSerializer.Serialize(MemoryBandwidth.Measure(Int(opts, "threads", 2), Int(opts, "mb", 512)))); return true;
            case "cpu-peer": exitCode = Peer(opts); return true;
            case "cpu-time": exitCode = Time(opts); return true;
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
        int threads = Int(o, "threads", 2), promptLen = Int(o, "prompt-len", 32), decode = Int(o, "decode", 32);
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
        // Run the whole prompt + decode twice and keep the second (JIT, page cache and allocator warm), as a server would be.
        double promptMs = 0;
        float[] firstLogits = [];
        List<int> ours = [];
        List<double> stepMs = [];
        var one = new int[1];
        for (int round = 0; round < 2; round++)
        {
            var sw = Stopwatch.StartNew();
            runner.Forward([new SeqChunk(prompt, 0, table, true)], logits);
            promptMs = sw.Elapsed.TotalMilliseconds;
            firstLogits = (float[])logits.Clone();
            ours = [ArgMax(logits)];
            stepMs = [];
            for (int i = 0; i < decode; i++)
            {
                one[0] = ours[^1];
                long t0 = Stopwatch.GetTimestamp();
                runner.Forward([new SeqChunk(one, promptLen + i, table, true)], logits);
                stepMs.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                ours.Add(ArgMax(logits));
            }
        }
        double oursTps = decode / (stepMs.Sum() / 1000);

        // llama.cpp on the same file, prompt and threads, fed our greedy tokens (teacher forcing).
        var psi = new ProcessStartInfo(o.GetValueOrDefault("node", "node"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var a in new[] { o.GetValueOrDefault("script", "scripts/llamacpp-peer/peer.mjs"), "--model", modelPath, "--threads", threads.ToString(CultureInfo.InvariantCulture),
                     "--prompt", string.Join(",", prompt), "--force", string.Join(",", ours.Take(decode)) })
            psi.ArgumentList.Add(a);
        using var node = Process.Start(psi)!;
        var stderr = node.StandardError.ReadToEndAsync();
        string stdout = node.StandardOutput.ReadToEnd();
        node.WaitForExit();
        if (node.ExitCode != 0) { Console.Error.WriteLine($"peer failed ({node.ExitCode}): {stderr.Result}"); return 1; }
        using var peer = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var r = peer.RootElement;
        var peerLogits = r.GetProperty("firstLogits").EnumerateArray().Select(e => (float)e.GetDouble()).ToArray();
        var peerNext = r.GetProperty("teacherForced").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        double peerTps = r.GetProperty("decodeTokensPerSecond").GetDouble();
        int agree = ours.Zip(peerNext).Count(p => p.First == p.Second);

        float maxDiff = 0, maxAbs = 0;
        for (int i = 0; i < c.Vocab; i++)
        {
            maxDiff = MathF.Max(maxDiff, MathF.Abs(firstLogits[i] - peerLogits[i]));
            maxAbs = MathF.Max(maxAbs, MathF.Abs(peerLogits[i]));
        }
        var top5Ours = Top(firstLogits, 5);
        var top5Peer = Top(peerLogits, 5);
        var bw = MemoryBandwidth.Measure(threads, 512);
        double roofline = bw.ReadGBps * 1e9 / model.WeightBytes;
        stepMs.Sort();
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
            top5Same = top5Ours.SequenceEqual(top5Peer),
            oursPromptMs = promptMs,
            peerPromptMs = r.GetProperty("promptMs").GetDouble(),
            oursDecodeTokPerS = oursTps,
            oursDecodeStepMedianMs = stepMs[stepMs.Count / 2],
            peerDecodeTokPerS = peerTps,
            ratioOursOverPeer = oursTps / peerTps,
            readBandwidthGBps = bw.ReadGBps,
            rooflineTokPerS = roofline,
            oursFractionOfRoofline = oursTps / roofline,
            peerFractionOfRoofline = peerTps / roofline,
        };
        Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    private static int Time(Dictionary<string, string> o)
    {
        int threads = Int(o, "threads", 1), promptLen = Int(o, "prompt-len", 32), reps = Int(o, "reps", 5);
        using var model = LlamaModel.Load(o["model"]);
        var c = model.Config;
        const int blockSize = 16;
        int blocks = promptLen / blockSize + 2;
        var pool = new KvPool(c, blocks, blockSize);
        using var runner = new LlamaRunner(model, pool, promptLen, threads);
        var table = Enumerable.Range(0, blocks).ToArray();
        var prompt = Enumerable.Range(0, promptLen).Select(i => 3 + i * 7919 % (c.Vocab - 3)).ToArray();
        var logits = new float[c.Vocab];
        var one = new[] { 5 };
        double Median(Action a)
        {
            a();
            var t = new double[reps];
            for (int i = 0; i < reps; i++) { long t0 = Stopwatch.GetTimestamp(); a(); t[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds; }
            Array.Sort(t);
            return t[reps / 2];
        }
        double prefill = Median(() => runner.Forward([new SeqChunk(prompt, 0, table, true)], logits));
        double decode = Median(() => runner.Forward([new SeqChunk(one, promptLen, table, true)], logits));
        Console.WriteLine($"threads {threads} isa {runner.Isa}: prefill {promptLen} tokens {prefill:F1} ms ({promptLen / prefill * 1000:F0} tok/s), decode step {decode:F2} ms ({1000 / decode:F1} tok/s), median of {reps}");
        return 0;
    }

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
