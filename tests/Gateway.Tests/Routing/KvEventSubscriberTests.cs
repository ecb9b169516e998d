using System.Net.Http.Json;
using Gateway.Core.Routing.KvAware;
using Gateway.Routing;
using Microsoft.Extensions.Logging.Abstractions;
using Worker.Contract;
using Worker;

namespace Gateway.Tests.Routing;

public class KvEventSubscriberTests
{
    [Fact]
    public void ParseEvent_StoredWithParent_ReadsAllFields()
    {
        var e = KvEventSubscriber.ParseEvent("""{"seq":7,"type":"stored","block_hashes":[1,18446744073709551615],"parent_block_hash":5,"block_size":16}""");
        Assert.Equal(7, e.Seq);
        Assert.Equal(KvEventType.Stored, e.Type);
        Assert.Equal([1UL, ulong.MaxValue], e.BlockHashes!);
        Assert.Equal(5UL, e.ParentBlockHash);
        Assert.Equal(KvMedium.Gpu, e.Medium); // absent medium: gpu
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KvEventSubscriber.ParseEvent("""{"seq":1,"type":"bogus"}"""));
        Assert.ThrowsAny<System.Text.Json.JsonException>(() => KvEventSubscriber.ParseEvent("""{"type":"stored","block_hashes":[1]}""")); // no seq
    }

    [Fact]
    public async Task RunAsync_RealWorker_IndexMirrorsWorkerCache()
    {
        await using var worker = await WorkerHost.StartAsync(new WorkerOptions { TimeScale = 100 });
        using var http = new HttpClient { BaseAddress = worker.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
        var prompt = string.Join(' ', Enumerable.Range(0, 600).Select(i => "word" + i));

        // Events before the subscriber starts are replayed from seq 0; events after it arrive live.
        (await http.PostAsJsonAsync("/v1/completions", new { model = "llama3-8b", prompt, max_tokens = 2 })).EnsureSuccessStatusCode();

        var index = new PreciseIndex(TimeProvider.System, TimeSpan.FromSeconds(2), maxWorkers: 4);
        var subscriber = new KvEventSubscriber(new HttpClient(), index, TimeProvider.System, NullLogger<KvEventSubscriber>.Instance);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var run = subscriber.RunAsync(worker.BaseAddress, 1, cts.Token);

        (await http.PostAsJsonAsync("/v1/completions", new { model = "llama3-8b", prompt = prompt + " and more words here", max_tokens = 2 })).EnsureSuccessStatusCode();

        // No more traffic: the worker's snapshot is the truth the index must converge to.
        var snapshot = await http.GetFromJsonAsync<Snapshot>("/worker/kv/snapshot");
        Assert.NotNull(snapshot);
        for (int i = 0; i < 300 && index.LastSeq(1) < snapshot.Seq; i++)
        {
            await Task.Delay(50);
        }

        Assert.Equal(snapshot.Seq, index.LastSeq(1));
        Assert.False(index.NeedsResync(1));
        Assert.True(snapshot.BlockHashes.Length > 0);
        Assert.Equal(snapshot.BlockHashes.Length, index.CountFor(1));
        var matched = new int[2];
        Assert.Equal(1, index.Match(snapshot.BlockHashes.AsSpan(0, 1), matched));

        cts.Cancel();
        await run;
    }

    private sealed record Snapshot(
        [property: System.Text.Json.Serialization.JsonPropertyName("seq")] long Seq,
        [property: System.Text.Json.Serialization.JsonPropertyName("block_hashes")] ulong[] BlockHashes);
}
