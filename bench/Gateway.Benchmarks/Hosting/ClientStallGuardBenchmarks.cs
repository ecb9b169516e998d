using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using Gateway.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Benchmarks.Hosting;

/// <summary>
/// What <see cref="ClientStallGuard"/> costs a request whose client keeps reading: the middleware wraps the response
/// body, and every write and flush goes through its writer, which starts a timer only for a write that has to wait.
/// One request = the pipeline up to the response body, then a streamed answer of <see cref="Chunks"/> SSE events
/// (about 120 bytes each, a write and a flush per event, as the proxy relays a worker's stream) into a pipe that a reader
/// drains as it goes. The baseline is the same pipeline without the guard; the difference is the guard's cost per request.
/// On a shared machine compare the Min columns (the iteration least disturbed by other processes) and the allocations.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class ClientStallGuardBenchmarks
{
    private static readonly byte[] Event = System.Text.Encoding.UTF8.GetBytes(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"}}]}\n\n");

    private RequestDelegate _plain = null!;
    private RequestDelegate _guarded = null!;
    private Pipe _pipe = null!;

    /// <summary>SSE events per response: 1 (a non-streamed answer) or 256 (a streamed one).</summary>
    [Params(1, 256)]
    public int Chunks { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        _plain = Build(guard: false);
        _guarded = Build(guard: true);
    }

    [Benchmark(Baseline = true)]
    public Task WithoutGuard() => Run(_plain);

    [Benchmark]
    public Task WithGuard() => Run(_guarded);

    private RequestDelegate Build(bool guard)
    {
        var app = new ApplicationBuilder(new EmptyServices());
        if (guard)
        {
            app.UseClientStallGuard(TimeSpan.FromSeconds(30));
        }

        int chunks = Chunks;
        app.Run(async context =>
        {
            var writer = context.Response.BodyWriter;
            for (int i = 0; i < chunks; i++)
            {
                await writer.WriteAsync(Event).ConfigureAwait(false);
            }
        });
        return app.Build();
    }

    private async Task Run(RequestDelegate pipeline)
    {
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(_pipe.Writer.AsStream(leaveOpen: true)));
        await pipeline(context).ConfigureAwait(false);

        // The client reads everything (the pipe never fills, so no write waits: the guard's fast path).
        while (_pipe.Reader.TryRead(out var read))
        {
            _pipe.Reader.AdvanceTo(read.Buffer.End);
            if (read.Buffer.IsEmpty)
            {
                break;
            }
        }
    }

    private sealed class EmptyServices : IServiceProvider
    {
        public object? GetService(Type serviceType) => null;
    }
}
