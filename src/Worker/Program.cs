using Worker;

// Standalone reference worker: parse the command line, serve until Ctrl+C / SIGTERM.
// `Worker make-model ...` writes a seeded random GGUF for the cpu backend instead.
return WorkerCommandLine.Create(options => ServeAsync(options).GetAwaiter().GetResult()).App.Invoke(args);

static async Task<int> ServeAsync(WorkerOptions options)
{
    WorkerHost startedHost;
    try
    {
        startedHost = await WorkerHost.StartAsync(options).ConfigureAwait(false);
    }
    catch (Exception e) when (e is NotSupportedException or InvalidDataException)
    {
        // The model or the machine cannot serve this backend (no CUDA device for gpu, unsupported GGUF): say so, no stack trace.
        await Console.Error.WriteLineAsync("error: " + e.Message).ConfigureAwait(false);
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
}
