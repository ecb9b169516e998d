using Worker.Cpu;

namespace Gateway.Benchmarks.Cpu;

/// <summary>Seeded random GGUF models for the CPU benchmarks, written once into the temp folder and reused.</summary>
internal static class CpuBenchModels
{
    /// <summary>A Llama-7B-like layer width (Dim 2048, 32 heads, 8 K/V heads, Hidden 5632, Vocab 32000) with 4 layers.</summary>
    public static readonly LlamaShape Decode = new(Vocab: 32000, Dim: 2048, Layers: 4, Heads: 32, KvHeads: 8, Hidden: 5632, MaxContext: 4096);

    public static string Path(LlamaShape shape, GgufTensorType type)
    {
        var dir = Directory.CreateDirectory(System.IO.Path.Combine(System.IO.Path.GetTempPath(), "gateway-bench-cpu")).FullName;
        var path = System.IO.Path.Combine(dir, $"v{shape.Vocab}-d{shape.Dim}-l{shape.Layers}-h{shape.Heads}-kv{shape.KvHeads}-f{shape.Hidden}-c{shape.MaxContext}-{type}.gguf");
        if (!File.Exists(path))
        {
            var tmp = path + "." + Environment.ProcessId + ".tmp";
            RandomLlamaGguf.Write(tmp, shape, seed: 1, type);
            File.Move(tmp, path, overwrite: true);
        }
        return path;
    }
}
