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

WorkerHost startedHost;
try
{
    startedHost = await WorkerHost.StartAsync(options).ConfigureAwait(false);
}
catch (Exception e) when (e is NotSupportedException or InvalidDataException)
{
    // The model or the machine cannot serve this backend (no CUDA device for gpu, unsupported GGUF): say so, no stack trace.
    Console.Error.WriteLine("error: " + e.Message);
    return 3;
}

await using var host = startedHost;
Console.WriteLine(
    $"worker listening on {host.BaseAddress} (model {host.ServedModel}, {options.Backend} backend, profile {host.Profile.Name}, " +
    $"{host.GetEngineState().KvBlocksTotal} KV blocks of {options.BlockSize} tokens, " +
    (options.Backend switch
    {
        "cpu" => $"real compute on {options.Threads} threads)",
        "gpu" => $"real compute on {host.Profile.Gpu})",
        _ => $"time scale {options.TimeScale})",
    }));
await host.WaitForShutdownAsync().ConfigureAwait(false);
return 0;
