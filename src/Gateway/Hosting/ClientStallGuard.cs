using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Hosting;

/// <summary>
/// Cuts off a client that stops reading its response. A write to the client normally completes at once (Kestrel buffers
/// up to its response buffer); it waits only when the client's socket is full. A write still waiting after
/// <c>Gateway:Limits:ClientStallTimeout</c> aborts the connection: the request is cancelled, so the worker's request and
/// its KV blocks are released, and the gateway never holds more of that response than the sockets and Kestrel's buffer.
/// Kestrel's own minimum response rate does not bound this: it credits every byte sent so far at the minimum rate, so
/// after a fast stream a stalled client would hold its worker for hours.
/// </summary>
public static class ClientStallGuard
{
    /// <summary>Wraps every response body in a writer whose waiting writes are timed against <paramref name="timeout"/>.</summary>
    public static IApplicationBuilder UseClientStallGuard(this IApplicationBuilder app, TimeSpan timeout, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (timeout <= TimeSpan.Zero)
        {
            return app;
        }

        var clock = time ?? TimeProvider.System;
        return app.Use((context, next) =>
        {
            if (context.Features.Get<IHttpResponseBodyFeature>() is { } inner)
            {
                context.Features.Set<IHttpResponseBodyFeature>(new GuardedBody(inner, context, timeout, clock));
            }

            return next(context);
        });
    }

    private sealed class GuardedBody(IHttpResponseBodyFeature inner, HttpContext context, TimeSpan timeout, TimeProvider time) : IHttpResponseBodyFeature
    {
        private GuardedWriter? _writer;
        private Stream? _stream;

        public PipeWriter Writer => _writer ??= new GuardedWriter(inner.Writer, context, timeout, time);

        public Stream Stream => _stream ??= Writer.AsStream(leaveOpen: true);

        public void DisableBuffering() => inner.DisableBuffering();

        public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
            inner.SendFileAsync(path, offset, count, cancellationToken);

        public Task CompleteAsync() => inner.CompleteAsync();
    }

    private sealed class GuardedWriter(PipeWriter inner, HttpContext context, TimeSpan timeout, TimeProvider time) : PipeWriter
    {
        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
            Timed(inner.FlushAsync(cancellationToken));

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
            Timed(inner.WriteAsync(source, cancellationToken));

        private ValueTask<FlushResult> Timed(ValueTask<FlushResult> pending) => pending.IsCompleted ? pending : WaitAsync(pending);

        // Only a write the client's socket holds up gets here: one timer for as long as it waits.
        private async ValueTask<FlushResult> WaitAsync(ValueTask<FlushResult> pending)
        {
            using var timer = time.CreateTimer(static s => ((HttpContext)s!).Abort(), context, timeout, Timeout.InfiniteTimeSpan);
            return await pending.ConfigureAwait(false);
        }
    }
}
