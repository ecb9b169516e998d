using BenchmarkDotNet.Running;
using Gateway.Benchmarks;

// `profiles` prints the roofline TTFT/ITL table quoted in docs/worker.md; anything else goes to BenchmarkDotNet
// (e.g. `-- --filter '*Hash*' --job short`).
if (args.Length > 0 && args[0] == "profiles")
{
    ProfileTable.Print(Console.Out);
    return 0;
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
