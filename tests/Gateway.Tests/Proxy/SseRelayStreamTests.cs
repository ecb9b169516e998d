using System.Text;
using Gateway.Auth;
using Llm.Prompt.OpenAi;
using Gateway.Core.Routing;
using Gateway.Proxy;

namespace Gateway.Tests.Proxy;

/// <summary>The SSE pass-through on scripted upstream reads: event boundaries, stripping, and every way a stream can break.</summary>
public sealed class SseRelayStreamTests
{
    private const string Usage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n";

    private static GatewayRequestContext Ctx(bool strip) => new()
    {
        RequestId = 1,
        Tenant = new Tenant("a/b/c", 1, [], 0, 0, "salt"),
        Request = new OpenAiRequest { Endpoint = OpenAiEndpoint.ChatCompletions, Model = "m", Stream = true },
        Route = new RouteRequest { TenantPath = "a/b/c", BlockHashes = [], PromptTokens = 1 },
        ForwardBody = Array.Empty<byte>(),
        StripUsageChunk = strip,
    };

    private static async Task<(string Text, List<int> ReadSizes)> Drain(SseRelayStream relay)
    {
        var sb = new StringBuilder();
        var sizes = new List<int>();
        var buf = new byte[65536];
        int n;
        while ((n = await relay.ReadAsync(buf)) > 0)
        {
            sizes.Add(n);
            sb.Append(Encoding.UTF8.GetString(buf, 0, n));
        }

        return (sb.ToString(), sizes);
    }

    [Fact]
    public async Task Read_EventSplitAcrossReads_HandedOnOnlyWhenComplete()
    {
        var ctx = Ctx(strip: false);
        var up = new ScriptedStream("data: {\"choices\":[{\"delta\":{\"con", "tent\":\"a\"}}]}\n", "\n", "data: [DONE]\n\n");
        await using var relay = new SseRelayStream(up, ctx, TimeSpan.FromSeconds(5), 1 << 20);
        var (text, sizes) = await Drain(relay);
        Assert.Equal("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: [DONE]\n\n", text);
        Assert.Equal([47, 14], sizes); // each event handed on whole, as soon as its blank line arrived
        Assert.True(ctx.SawDone);
        Assert.False(relay.Failed);
    }

    [Fact]
    public async Task Read_CrLfEventsAndUsageChunkInMiddle_UsageStrippedAndRecorded()
    {
        var ctx = Ctx(strip: true);
        var up = new ScriptedStream("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\r\n\r\n" + Usage + "data: [DONE]\r\n\r\n");
        await using var relay = new SseRelayStream(up, ctx, TimeSpan.FromSeconds(5), 1 << 20);
        var (text, _) = await Drain(relay);
        Assert.DoesNotContain("usage", text, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\r\n\r\n", text, StringComparison.Ordinal);
        Assert.Equal((7, 4, 2), (ctx.PromptTokens, ctx.CachedTokens, ctx.CompletionTokens));
        Assert.Equal("stop", ctx.FinishReason);
    }

    [Fact]
    public async Task Read_UpstreamThrowsMidStream_ErrorEventThenEnd()
    {
        var ctx = Ctx(strip: false);
        var up = new ScriptedStream("data: {\"choices\":[]}\n\ndata: {\"cho") { ThrowAtEnd = new IOException("reset") };
        await using var relay = new SseRelayStream(up, ctx, TimeSpan.FromSeconds(5), 1 << 20);
        var (text, _) = await Drain(relay);
        Assert.StartsWith("data: {\"choices\":[]}\n\ndata: {\"error\":", text, StringComparison.Ordinal); // partial event dropped
        Assert.Contains("upstream_connection_lost", text, StringComparison.Ordinal);
        Assert.EndsWith("\n\n", text, StringComparison.Ordinal);
        Assert.True(relay.Failed);
    }

    [Fact]
    public async Task Read_CleanEndWithoutDone_ErrorEvent()
    {
        var ctx = Ctx(strip: false);
        await using var relay = new SseRelayStream(new ScriptedStream("data: {\"choices\":[]}\n\n"), ctx, TimeSpan.FromSeconds(5), 1 << 20);
        var (text, _) = await Drain(relay);
        Assert.Contains("upstream_stream_incomplete", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Read_EventLargerThanLimit_ErrorEvent()
    {
        var ctx = Ctx(strip: false);
        string huge = "data: " + new string('x', 40_000);
        await using var relay = new SseRelayStream(new ScriptedStream(huge, "more"), ctx, TimeSpan.FromSeconds(5), 16 * 1024);
        var (text, _) = await Drain(relay);
        Assert.Contains("upstream_event_too_large", text, StringComparison.Ordinal);
        Assert.DoesNotContain("xxxx", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prime_UpstreamFailsBeforeFirstEvent_Throws()
    {
        var ctx = Ctx(strip: false);
        var up = new ScriptedStream("data: {\"cho") { ThrowAtEnd = new IOException("reset") };
        await using var relay = new SseRelayStream(up, ctx, TimeSpan.FromSeconds(5), 1 << 20);
        await Assert.ThrowsAsync<IOException>(async () => await relay.PrimeAsync(CancellationToken.None));
    }

    /// <summary>Returns each scripted chunk from one read, then EOF (or throws).</summary>
    private sealed class ScriptedStream(params string[] chunks) : Stream
    {
        private int _next;

        public Exception? ThrowAtEnd { get; init; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_next >= chunks.Length)
            {
                return ThrowAtEnd is null ? ValueTask.FromResult(0) : ValueTask.FromException<int>(ThrowAtEnd);
            }

            var bytes = Encoding.UTF8.GetBytes(chunks[_next]);
            int n = Math.Min(bytes.Length, buffer.Length);
            bytes.AsSpan(0, n).CopyTo(buffer.Span);
            if (n == bytes.Length)
            {
                _next++;
            }
            else
            {
                chunks[_next] = Encoding.UTF8.GetString(bytes, n, bytes.Length - n);
            }

            return ValueTask.FromResult(n);
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
