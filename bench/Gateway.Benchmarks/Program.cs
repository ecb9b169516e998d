using BenchmarkDotNet.Running;
using Gateway.Benchmarks;

// `profiles` prints the roofline TTFT/ITL table quoted in docs/worker.md; anything else goes to BenchmarkDotNet
// (e.g. `-- --filter '*Hash*' --job short`); cpu-gguf / membw / cpu-peer are the CPU backend's commands (Cpu/CpuCommands.cs).
if (args.Length > 0 && args[0] == "profiles")
{
    ProfileTable.Print(Console.Out);
    return 0;
}

if (args.Length > 0 && args[0] == "tokenizers-ab")
{
    return Gateway.Benchmarks.Tokenization.TokenizerAb.Run(args);
}

if (Gateway.Benchmarks.Cpu.CpuCommands.TryRun(args, out int cpuExit)) return cpuExit;

BenchmarkSwitcher.FromAssembly(typeof(ProfileTable).Assembly).Run(args);
return 0;
