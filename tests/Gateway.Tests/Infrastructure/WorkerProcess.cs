using System.Diagnostics;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A reference worker in a process of its own (<c>dotnet Worker.dll</c>, beside the tests' assemblies) on a loopback port
/// it picks itself, so a test can SIGKILL it: no graceful stop, no last bytes written, the sockets reset by the kernel.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    /// <summary>The worker's base address (http://127.0.0.1:PORT/).</summary>
    public Uri BaseAddress { get; }

    /// <summary>The base address as the gateway's worker list wants it.</summary>
    public string Url => BaseAddress.GetLeftPart(UriPartial.Authority);

    /// <summary>Starts <c>Worker --urls http://127.0.0.1:0</c> with <paramref name="args"/> and waits for its "listening" line.</summary>
    public static async Task<WorkerProcess> StartAsync(params string[] args)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "Worker.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add("--urls");
        psi.ArgumentList.Add("http://127.0.0.1:0");
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DOTNET_NOLOGO"] = "1";
        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the worker process");
        _ = process.StandardError.ReadToEndAsync(); // never let a full pipe block it
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                // "worker listening on http://127.0.0.1:PORT/ (model ...)"
                const string prefix = "worker listening on ";
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    var url = line[prefix.Length..].Split(' ')[0];
                    _ = process.StandardOutput.ReadToEndAsync();
                    return new WorkerProcess(process, new Uri(url));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        process.Kill(entireProcessTree: true);
        process.Dispose();
        throw new InvalidOperationException("the worker process did not start listening within 60 s");
    }

    /// <summary>SIGKILL: the process ends at once, whatever it was doing.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        try
        {
            Kill();
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        return ValueTask.CompletedTask;
    }
}
