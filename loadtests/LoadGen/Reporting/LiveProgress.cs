using System.Globalization;
using LoadGen.Metrics;
using Spectre.Console;

namespace LoadGen.Reporting;

/// <summary>
/// Live progress while a run is going: a Spectre.Console live table (per tenant: issued, ok, errors, in flight,
/// recent TTFT p50, output tokens/s) when the terminal is interactive, plain periodic lines otherwise (CI, pipes).
/// </summary>
public static class LiveProgress
{
    /// <summary>True when stdout is a terminal that can redraw.</summary>
    public static bool IsInteractive => !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>Shows progress until <paramref name="run"/> completes; returns its result.</summary>
    public static async Task<T> ShowAsync<T>(Task<T> run, MetricsCollector metrics, Func<double> elapsed, string title, bool interactive, TimeSpan interval, TextWriter plainOut)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(elapsed);
        ArgumentNullException.ThrowIfNull(plainOut);
        if (interactive)
        {
            await AnsiConsole.Live(BuildTable(metrics, elapsed(), title)).AutoClear(false).StartAsync(async ctx =>
            {
                while (!run.IsCompleted)
                {
                    await Task.WhenAny(run, Task.Delay(TimeSpan.FromMilliseconds(500))).ConfigureAwait(false);
                    ctx.UpdateTarget(BuildTable(metrics, elapsed(), title));
                    ctx.Refresh();
                }
            }).ConfigureAwait(false);
        }
        else
        {
            while (!run.IsCompleted)
            {
                await Task.WhenAny(run, Task.Delay(interval)).ConfigureAwait(false);
                await plainOut.WriteLineAsync(PlainLine(metrics, elapsed())).ConfigureAwait(false);
            }
        }

        return await run.ConfigureAwait(false);
    }

    /// <summary>One progress line: elapsed, issued, in flight, ok, errors and per-tenant ok/error counts.</summary>
    public static string PlainLine(MetricsCollector metrics, double elapsed)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var c = CultureInfo.InvariantCulture;
        long ok = 0, err = 0;
        var parts = new List<string>();
        foreach (var (name, t) in metrics.Live.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            ok += t.Ok;
            err += t.Error;
            parts.Add(string.Create(c, $"{name} {t.Ok}/{t.Error} ttft50={t.RecentTtftP50():0}ms"));
        }

        return string.Create(c, $"[{elapsed,6:0.0}s] issued={metrics.Issued} in_flight={metrics.InFlight} ok={ok} error={err} | ") + string.Join(" | ", parts);
    }

    private static Table BuildTable(MetricsCollector metrics, double elapsed, string title)
    {
        var c = CultureInfo.InvariantCulture;
        var table = new Table().Border(TableBorder.Rounded)
            .Title(Markup.Escape(string.Create(c, $"{title}  {elapsed:0.0} s  issued {metrics.Issued}  in flight {metrics.InFlight}")));
        table.AddColumns("tenant", "issued", "ok", "error", "TTFT p50 (recent)", "out tok/s");
        foreach (var (name, t) in metrics.Live.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            table.AddRow(
                Markup.Escape(name),
                t.Issued.ToString(c),
                $"[green]{t.Ok.ToString(c)}[/]",
                t.Error > 0 ? $"[red]{t.Error.ToString(c)}[/]" : "0",
                t.RecentTtftP50().ToString("0.0", c) + " ms",
                (elapsed > 0 ? t.OutputTokens / elapsed : 0).ToString("0.0", c));
        }

        return table;
    }
}
