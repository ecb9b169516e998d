using System.Diagnostics;
using Gateway.Telemetry;

// Wall-clock ns and allocated bytes per call on the calling thread, after a warm-up; one scrape's time and size.
using var m = new GatewayMetrics();
string[] tenants = [.. Enumerable.Range(0, 50).Select(i => $"org{i % 10}/team{i}/key{i}")];

Run("RecordRequest (3 labels; 50 tenants x 2 statuses)", 2_000_000,
    i => m.RecordRequest(tenants[i % 50], (i & 1) == 0 ? 200 : 429, "chat/completions"));
Run("RecordTimeToFirstToken (histogram, 1 label)", 2_000_000,
    i => m.RecordTimeToFirstToken(tenants[i % 50], TimeSpan.FromMilliseconds(i % 3000)));
Run("RecordCachedTokens (4 counters)", 1_000_000, _ => m.RecordCachedTokens("prefix-affinity", 2000, 1024, 960));
var lookup = tenants.ToDictionary(t => t, t => t.Length);
long sink = 0;
Run("baseline: Dictionary<string,int> lookup", 2_000_000, i => sink += lookup[tenants[i % 50]]);

m.SetWorkerSource(() => [.. Enumerable.Range(0, 64).Select(w => new WorkerTelemetry("worker-" + w, w, 0.5, CircuitState.Closed, false))]);
string text = await m.ScrapeAsync();
var sw = Stopwatch.StartNew();
const int scrapes = 200;
for (int i = 0; i < scrapes; i++) text = await m.ScrapeAsync();
int samples = text.Split('\n').Count(l => l.Length > 0 && l[0] != '#');
Console.WriteLine($"Scrape (64 workers): {sw.Elapsed.TotalMilliseconds / scrapes:F2} ms/scrape, {text.Length} bytes, {samples} samples");
Console.WriteLine($"(sink {sink % 2})");

static void Run(string name, int n, Action<int> action)
{
    for (int i = 0; i < 20_000; i++) action(i);
    long alloc0 = GC.GetAllocatedBytesForCurrentThread();
    var sw = Stopwatch.StartNew();
    for (int i = 0; i < n; i++) action(i);
    sw.Stop();
    long alloc = GC.GetAllocatedBytesForCurrentThread() - alloc0;
    Console.WriteLine($"{name}: {sw.Elapsed.TotalNanoseconds / n:F0} ns/op, {(double)alloc / n:F1} B/op");
}
