using Worker;
using Worker.Backends;

// Standalone reference worker: parse the command line, serve until Ctrl+C / SIGTERM.
// `Worker make-model ...` writes a seeded random GGUF for the cpu backend instead.
if (args.Length > 0 && args[0] == "make-model")
{
    return MakeModelCommand.Run(args[1..], Console.Out, Console.Error);
}

var options = WorkerOptions.Parse(args, out var errors, out bool help);
if (help)
{
    Console.WriteLine(WorkerOptions.Usage);
    return 0;
}

if (errors.Count > 0)
{
    foreach (var e in errors)
    {
        Console.Error.WriteLine("error: " + e);
    }

    Console.Error.WriteLine(WorkerOptions.Usage);
    return 2;
}

await using var host = await WorkerHost.StartAsync(options).ConfigureAwait(false);
Console.WriteLine(
    $"worker listening on {host.BaseAddress} (model {host.ServedModel}, {options.Backend} backend, profile {host.Profile.Name}, " +
    $"{host.GetEngineState().KvBlocksTotal} KV blocks of {options.BlockSize} tokens, " +
    (options.Backend == "cpu" ? $"real compute on {options.Threads} threads)" : $"time scale {options.TimeScale})"));
await host.WaitForShutdownAsync().ConfigureAwait(false);
return 0;
