using System.Diagnostics;
using System.Globalization;
using Worker.Cpu;
using Worker.Gpu;

namespace Gateway.Benchmarks.Cpu;

/// <summary>
/// gpu-time --model FILE [--prompt-len 32 --context 512 --reps 20 --peak-gbps 3350]: the GPU backend's prefill and
/// decode-step time on the first CUDA device (median of reps), the weight bytes a decode step streams over that time,
/// and its fraction of the HBM roofline (peak-gbps: the device's memory bandwidth; 3350 = H100 SXM, the simulator's
/// h100 profiles). Refuses, like the worker, when there is no CUDA device.
/// </summary>
internal static class GpuTimeCommand
{
    public static int Run(Dictionary<string, string> o)
    {
        int promptLen = Int(o, "prompt-len", 32), context = Int(o, "context", 512), reps = Int(o, "reps", 20);
        double peakGBps = double.Parse(o.GetValueOrDefault("peak-gbps", "3350"), CultureInfo.InvariantCulture);
        GpuDevice device;
        try
        {
            device = GpuDevice.OpenCuda();
        }
        catch (NotSupportedException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return 3;
        }

        using (device)
        {
            using var model = LlamaModel.Load(o["model"]);
            var c = model.Config;
            const int blockSize = 16;
            int blocks = (Math.Max(promptLen, context) + 1) / blockSize + 2;
            using var runner = new GpuRunner(device.Accelerator, model, blocks, blockSize, Math.Max(promptLen, 1));
            var table = Enumerable.Range(0, blocks).ToArray();
            var prompt = Enumerable.Range(0, promptLen).Select(i => 3 + i * 7919 % (c.Vocab - 3)).ToArray();
            var logits = new float[c.Vocab];
            double Median(Action a)
            {
                a();
                var t = new double[reps];
                for (int i = 0; i < reps; i++)
                {
                    long t0 = Stopwatch.GetTimestamp();
                    a();
                    t[i] = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                }

                Array.Sort(t);
                return t[reps / 2];
            }

            double prefill = Median(() => runner.Forward([new SeqChunk(prompt, 0, table, true)], logits));
            int decodePos = Math.Min(context, c.MaxContext - 1);
            double decode = Median(() => runner.Forward([new SeqChunk(new[] { 5 }, decodePos, table, true)], logits));
            double gbps = model.WeightBytes / (decode / 1000) / 1e9;
            Console.WriteLine($"{device.Name}: prefill {promptLen} tokens {prefill:F2} ms, decode step at position {decodePos} {decode:F3} ms " +
                $"({1000 / decode:F0} tok/s), {model.WeightBytes / 1e6:F0} MB of weights per step = {gbps:F0} GB/s, " +
                $"{gbps / peakGBps:P0} of {peakGBps:F0} GB/s (roofline step {model.WeightBytes / (peakGBps * 1e9) * 1000:F3} ms, ours {decode / (model.WeightBytes / (peakGBps * 1e9) * 1000):F2}x it)");
            return 0;
        }
    }

    private static int Int(Dictionary<string, string> o, string key, int fallback) =>
        o.TryGetValue(key, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
}
