using System.Globalization;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

// Attaches to a .NET process for N seconds and prints the sampled allocated bytes (one GCAllocationTick per ~100 KB
// allocated, each carrying the type of the object that crossed the threshold), grouped by type or, with "stacks", by
// type and the first frame of the gateway, YARP, Polly or prometheus-net that allocated it. The sum estimates the
// bytes allocated in the window; divided by the requests served in it, the bytes per request by type.
// usage: AllocProbe PID SECONDS [TOP=40] [types|stacks]
if (args.Length < 2)
{
    Console.Error.WriteLine("usage: AllocProbe PID SECONDS [TOP=40] [types|stacks]");
    return 2;
}

int pid = int.Parse(args[0], CultureInfo.InvariantCulture);
int seconds = int.Parse(args[1], CultureInfo.InvariantCulture);
int top = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 40;
bool stacks = args.Length > 3 && args[3] == "stacks";
var keywords = ClrTraceEventParser.Keywords.GC | (stacks ? ClrTraceEventParser.Keywords.Jit | ClrTraceEventParser.Keywords.Loader | ClrTraceEventParser.Keywords.Stack : 0);
var providers = new[] { new EventPipeProvider("Microsoft-Windows-DotNETRuntime", System.Diagnostics.Tracing.EventLevel.Verbose, (long)keywords) };
var client = new DiagnosticsClient(pid);
var bytes = new Dictionary<string, long>(StringComparer.Ordinal);
long total = 0;
void Add(string key, long amount)
{
    bytes[key] = bytes.GetValueOrDefault(key) + amount;
    total += amount;
}

if (!stacks)
{
    using var session = client.StartEventPipeSession(providers, requestRundown: false);
    using var source = new EventPipeEventSource(session.EventStream);
    source.Clr.GCAllocationTick += e => Add(e.TypeName ?? "?", e.AllocationAmount64);
    _ = Task.Run(async () =>
    {
        await Task.Delay(TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
        session.Stop();
    });
    source.Process();
}
else
{
    // Stacks need the JIT's method rundown at the end of the session: record to a file, then resolve it.
    string file = Path.Combine(Path.GetTempPath(), $"allocprobe-{pid}.nettrace");
    using (var session = client.StartEventPipeSession(providers, requestRundown: true))
    {
        using var fs = File.Create(file);
        var copy = session.EventStream.CopyToAsync(fs);
        await Task.Delay(TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
        session.Stop();
        await copy.ConfigureAwait(false);
    }

    int innermost = int.TryParse(Environment.GetEnvironmentVariable("FRAMES"), out int n) ? n : 0;
    using var log = new TraceLog(TraceLog.CreateFromEventPipeDataFile(file));
    foreach (var ev in log.Events)
    {
        if (ev is not GCAllocationTickTraceData e)
        {
            continue;
        }

        var frames = new List<string>();
        for (var s = e.CallStack(); s is not null && frames.Count < 40; s = s.Caller)
        {
            frames.Add(s.CodeAddress.FullMethodName ?? "?");
        }

        int first = frames.FindIndex(f => f.StartsWith("Gateway.", StringComparison.Ordinal) || f.StartsWith("Yarp", StringComparison.Ordinal)
            || f.StartsWith("Polly", StringComparison.Ordinal) || f.StartsWith("Prometheus", StringComparison.Ordinal));
        // FRAMES=n: the n innermost frames from the allocation itself (default: 3 frames around the first proxy frame).
        var shown = innermost > 0 ? frames.Take(innermost) : first < 0 ? frames.Take(3) : frames.Skip(Math.Max(0, first - 1)).Take(3);
        Add((e.TypeName ?? "?") + " @ " + string.Join(" < ", shown), e.AllocationAmount64);
    }
}

Console.WriteLine($"total {total}");
foreach (var (key, value) in bytes.OrderByDescending(kv => kv.Value).Take(top))
{
    Console.WriteLine($"{value,12} {100.0 * value / Math.Max(1, total),5:F1}% {key}");
}

return 0;
