using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A reference worker or a gateway in a process of its own (<c>dotnet Worker.dll</c> / <c>dotnet Gateway.dll</c>, beside
/// the tests' assemblies) on a loopback port, so a test can SIGKILL it: no graceful stop, no last bytes written, its
/// sockets reset by the kernel, its leases in Redis left to expire.
/// </summary>
public sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private ServerProcess(Process process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    /// <summary>The server's base address (http://127.0.0.1:PORT/).</summary>
    public Uri BaseAddress { get; }

    /// <summary>The base address as the gateway's worker list wants it.</summary>
    public string Url => BaseAddress.GetLeftPart(UriPartial.Authority);

    /// <summary>Starts <c>Worker --urls http://127.0.0.1:0</c> with <paramref name="args"/> and waits for its "listening" line.</summary>
    public static async Task<ServerProcess> StartWorkerAsync(params string[] args)
    {
        var process = Start("Worker.dll", ["--urls", "http://127.0.0.1:0", .. args], new Dictionary<string, string?>());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await process.StandardOutput.ReadLineAsync(timeout.Token) is { } line)
            {
                // "worker listening on http://127.0.0.1:PORT/ (model ...)"
                const string prefix = "worker listening on ";
                if (line.StartsWith(prefix, StringComparison.Ordinal))
                {
                    _ = process.StandardOutput.ReadToEndAsync();
                    return new ServerProcess(process, new Uri(line[prefix.Length..].Split(' ')[0]));
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        throw Fail(process, "the worker process did not start listening within 60 s");
    }

    /// <summary>
    /// Starts a gateway with <paramref name="settings"/> (configuration keys such as <c>Gateway:State:Redis</c>, passed as
    /// environment variables) on a free loopback port and waits until <c>/readyz</c> answers 200.
    /// </summary>
    public static async Task<ServerProcess> StartGatewayAsync(IDictionary<string, string?> settings)
    {
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        var env = new Dictionary<string, string?>(settings) { ["Gateway:Listen"] = $"http://127.0.0.1:{port}" };
        var process = Start("Gateway.dll", [], env);
        _ = process.StandardOutput.ReadToEndAsync();
        var baseAddress = new Uri($"http://127.0.0.1:{port}/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60) && !process.HasExited)
        {
            try
            {
                using var r = await http.GetAsync(new Uri(baseAddress, "readyz"));
                if (r.IsSuccessStatusCode)
                {
                    return new ServerProcess(process, baseAddress);
                }
            }
            catch (HttpRequestException)
            {
            }
            catch (TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        throw Fail(process, "the gateway process did not become ready within 60 s");
    }

    private static Process Start(string dll, string[] args, IDictionary<string, string?> settings)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        psi.Environment["DOTNET_NOLOGO"] = "1";
        foreach (var (k, v) in settings)
        {
            psi.Environment[k.Replace(":", "__", StringComparison.Ordinal)] = v;
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + dll);
        _ = process.StandardError.ReadToEndAsync(); // never let a full pipe block it
        return process;
    }

    private static InvalidOperationException Fail(Process process, string message)
    {
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
        }

        process.Dispose();
        return new InvalidOperationException(message);
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
