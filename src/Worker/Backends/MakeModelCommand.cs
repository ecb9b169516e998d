using System.CommandLine;
using Cli;
using Worker.Cpu;

namespace Worker.Backends;

/// <summary>
/// <c>Worker make-model</c>: writes a seeded random-weight Llama GGUF with the byte-level vocabulary the cpu backend
/// tokenizes with, so a cpu-backend worker needs no download. Same arguments = same file.
/// </summary>
internal static class MakeModelCommand
{
    private sealed record Request(string Path, LlamaShape Shape, int Seed, GgufTensorType Type);

    /// <summary>Adds the verb to the worker's command line; it reports to <paramref name="stdout"/> and <paramref name="stderr"/>.</summary>
    public static void AddTo(CliApp app, TextWriter stdout, TextWriter stderr)
    {
        var output = CliOptions.OptionalText("--out", "GGUF file to write (required)", "none");
        var dim = CliOptions.Create("--dim", "model dimension", 256);
        var layers = CliOptions.Create("--layers", "transformer layers", 4);
        var heads = CliOptions.Create("--heads", "attention heads", 8);
        var kvHeads = CliOptions.Create("--kv-heads", "key/value heads (grouped-query attention)", 4);
        var hidden = CliOptions.Create("--hidden", "feed-forward hidden size", 768);
        var vocab = CliOptions.Create("--vocab", "vocabulary: 0 <unk>, 1 <s>, 2 </s>, 3..258 the bytes 0x00..0xFF, then filler tokens", 512);
        var maxContext = CliOptions.Create("--max-context", "longest context", 4096);
        var seed = CliOptions.Create("--seed", "seed of the random weights", 1);
        var type = CliOptions.Create("--type", "tensor type: f32, f16 or q8_0", "f32");
        var command = new Command("make-model", "Writes a seeded random-weight Llama GGUF for the cpu backend. Serve it with: Worker --backend cpu --model FILE.gguf");
        command.AddOptions(output, dim, layers, heads, kvHeads, hidden, vocab, maxContext, seed, type);
        app.Root.Subcommands.Add(command);
        app.Handle(
            command,
            input =>
            {
                var shape = new LlamaShape(
                    Vocab: input.InRange(vocab, 1, int.MaxValue), Dim: input.InRange(dim, 1, int.MaxValue), Layers: input.InRange(layers, 1, int.MaxValue),
                    Heads: input.InRange(heads, 1, int.MaxValue), KvHeads: input.InRange(kvHeads, 1, int.MaxValue), Hidden: input.InRange(hidden, 1, int.MaxValue),
                    MaxContext: input.InRange(maxContext, 1, int.MaxValue));
                string typeName = input.Get(type) ?? "f32";
                GgufTensorType? tensorType = typeName.ToLowerInvariant() switch
                {
                    "f32" => GgufTensorType.F32,
                    "f16" => GgufTensorType.F16,
                    "q8_0" => GgufTensorType.Q8_0,
                    _ => null,
                };
                if (tensorType is null)
                {
                    input.Error($"--type must be f32, f16 or q8_0, got '{typeName}'");
                }

                string? path = input.GetGiven(output);
                if (string.IsNullOrEmpty(path))
                {
                    input.Error("--out FILE.gguf is required");
                }

                return new Request(path ?? "", shape, input.InRange(seed, 1, int.MaxValue), tensorType ?? GgufTensorType.F32);
            },
            r => Write(r, stdout, stderr));
    }

    /// <summary>Runs the verb with <paramref name="args"/> (what follows <c>make-model</c>); returns the process exit code.</summary>
    public static int Run(IReadOnlyList<string> args, TextWriter stdout, TextWriter stderr) =>
        WorkerCommandLine.Create(_ => 0, stdout, stderr).App.Invoke(["make-model", .. args], stdout, stderr);

    private static int Write(Request r, TextWriter stdout, TextWriter stderr)
    {
        try
        {
            RandomLlamaGguf.Write(r.Path, r.Shape, r.Seed, r.Type);
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException)
        {
            stderr.WriteLine("error: " + ex.Message);
            return CliApp.UsageError;
        }

        stdout.WriteLine($"wrote {r.Path} ({new FileInfo(r.Path).Length} bytes): {r.Shape} seed {r.Seed} {r.Type}");
        return 0;
    }
}
