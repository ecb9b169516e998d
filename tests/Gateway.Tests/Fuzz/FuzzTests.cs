using System.Globalization;
using Gateway.Tests.Infrastructure;
using Worker;
using Xunit.Abstractions;

namespace Gateway.Tests.Fuzz;

/// <summary>
/// Property: for every generated request (bodies and headers of every endpoint, see <see cref="RequestGenerators"/>)
/// a live gateway over four in-process reference workers, and a reference worker on its own, answer without a 5xx,
/// every error body is in the endpoint's shape, and the server is still ready afterwards. A few hundred inputs by
/// default; <c>scripts/fuzz.sh N</c> runs N (env <c>FUZZ_INPUTS</c>, <c>FUZZ_SEED</c>, <c>FUZZ_PARALLEL</c>,
/// <c>FUZZ_REPORT</c> = a file the report is appended to).
/// </summary>
public sealed class FuzzTests(ITestOutputHelper output)
{
    private static int Inputs => int.TryParse(Environment.GetEnvironmentVariable("FUZZ_INPUTS"), CultureInfo.InvariantCulture, out int n) && n > 0 ? n : 300;

    private static ulong Seed => ulong.TryParse(Environment.GetEnvironmentVariable("FUZZ_SEED"), CultureInfo.InvariantCulture, out ulong s) ? s : 20261207;

    private static int Parallel => int.TryParse(Environment.GetEnvironmentVariable("FUZZ_PARALLEL"), CultureInfo.InvariantCulture, out int p) && p > 0 ? p : 4;

    private const string Chat = """{"model":"llama3-8b","messages":[{"role":"user","content":"still there?"}],"max_tokens":4}""";

    [Fact]
    public async Task Gateway_AnswersEveryGeneratedRequest_WithoutA5xx_InItsErrorShape()
    {
        await using var gw = await TestGateway.StartEmbeddedAsync([], new Dictionary<string, string?>
        {
            ["Gateway:Workers:Embedded:TimeScale"] = "0",
            ["Logging:LogLevel:Default"] = "None",
        });
        var runner = new FuzzRunner(gw.BaseAddress, RequestGenerators.Request([RequestGenerators.Chat, RequestGenerators.Completions, RequestGenerators.Embeddings, RequestGenerators.Messages, RequestGenerators.Responses], TestGateway.DemoKey), 8L << 20);
        var report = await runner.RunAsync("gateway (4 embedded reference workers)", Inputs, Seed, Parallel, async http =>
        {
            using var ready = await http.GetAsync("/readyz");
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestGateway.Json(Chat) };
            req.Headers.Authorization = new("Bearer", TestGateway.DemoKey);
            using var chat = await http.SendAsync(req);
            return ready.IsSuccessStatusCode && chat.IsSuccessStatusCode;
        });
        Publish(report);
    }

    [Fact]
    public async Task Worker_AnswersEveryGeneratedRequest_WithoutA5xx_InItsErrorShape()
    {
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions
        {
            Url = "http://127.0.0.1:0",
            Profile = "h100-llama3-8b",
            TimeScale = 0,
            KvBlocks = 4096,
            LogLevel = Microsoft.Extensions.Logging.LogLevel.None,
        });
        var runner = new FuzzRunner(worker.BaseAddress, RequestGenerators.Request(
            [RequestGenerators.Chat, RequestGenerators.Completions, RequestGenerators.Embeddings, RequestGenerators.Retain, RequestGenerators.Release], null), 32L << 20);
        var report = await runner.RunAsync("reference worker", Inputs, Seed, Parallel, async http =>
        {
            using var ready = await http.GetAsync("/readyz");
            using var chat = await http.PostAsync("/v1/chat/completions", TestGateway.Json(Chat));
            return ready.IsSuccessStatusCode && chat.IsSuccessStatusCode;
        });
        Publish(report);
    }

    private void Publish(FuzzReport report)
    {
        string md = report.ToMarkdown();
        output.WriteLine(md);
        if (Environment.GetEnvironmentVariable("FUZZ_REPORT") is { Length: > 0 } path)
        {
            File.AppendAllText(path, md + Environment.NewLine);
        }

        Assert.Equal(Inputs, report.Inputs);
        Assert.True(report.FailureCount == 0, md);
        Assert.True(report.ReadyAfter, md);
    }
}
