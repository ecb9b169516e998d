using System.Globalization;
using Worker.Cpu;

namespace Worker.Backends;

/// <summary>
/// <c>Worker make-model</c>: writes a seeded random-weight Llama GGUF with the byte-level vocabulary the cpu backend
/// tokenizes with, so a cpu-backend worker needs no download. Same arguments = same file.
/// </summary>
internal static class MakeModelCommand
{
    public const string Usage =
        """
        usage: Worker make-model --out FILE.gguf [--dim 256] [--layers 4] [--heads 8] [--kv-heads 4] [--hidden 768]
                                 [--vocab 512] [--max-context 4096] [--seed 1] [--type f32|f16|q8_0]
          Writes a seeded random-weight Llama GGUF (vocabulary: 0 <unk>, 1 <s>, 2 </s>, 3..258 the bytes 0x00..0xFF,
          then filler tokens up to --vocab). Serve it with: Worker --backend cpu --model FILE.gguf
        """;

    /// <summary>Runs the verb; returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var errors = new List<string>();
        for (int i = 0; i < args.Count; i++)
        {
            if (args[i] is "--help" or "-h")
            {
                stdout.WriteLine(Usage);
                return 0;
            }

            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Count)
            {
                errors.Add($"unexpected argument '{args[i]}'");
                continue;
            }

            values[args[i][2..]] = args[++i];
        }

        int Int(string name, int def)
        {
            if (!values.Remove(name, out var s))
            {
                return def;
            }

            if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < 1)
            {
                errors.Add($"--{name} must be a positive integer, got '{s}'");
            }

            return v;
        }

        values.Remove("out", out string? path);
        values.Remove("type", out string? typeName);
        var shape = new LlamaShape(
            Vocab: Int("vocab", 512), Dim: Int("dim", 256), Layers: Int("layers", 4), Heads: Int("heads", 8),
            KvHeads: Int("kv-heads", 4), Hidden: Int("hidden", 768), MaxContext: Int("max-context", 4096));
        int seed = Int("seed", 1);
        var type = (typeName ?? "f32").ToLowerInvariant() switch
        {
            "f32" => GgufTensorType.F32,
            "f16" => GgufTensorType.F16,
            "q8_0" => GgufTensorType.Q8_0,
            _ => (GgufTensorType?)null,
        };
        if (type is null)
        {
            errors.Add($"--type must be f32, f16 or q8_0, got '{typeName}'");
        }

        if (string.IsNullOrEmpty(path))
        {
            errors.Add("--out FILE.gguf is required");
        }

        errors.AddRange(values.Keys.Select(k => $"unknown option --{k}"));
        if (errors.Count == 0)
        {
            try
            {
                RandomLlamaGguf.Write(path!, shape, seed, type!.Value);
            }
            catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException)
            {
                errors.Add(ex.Message);
            }
        }

        if (errors.Count > 0)
        {
            foreach (var e in errors)
            {
                stderr.WriteLine("error: " + e);
            }

            stderr.WriteLine(Usage);
            return 2;
        }

        stdout.WriteLine($"wrote {path} ({new FileInfo(path!).Length} bytes): {shape} seed {seed} {type}");
        return 0;
    }
}
