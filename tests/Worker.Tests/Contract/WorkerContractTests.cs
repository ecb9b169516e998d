using System.Text.Json;
using Worker.Contract;
using Worker.Tests.Host;

namespace Worker.Tests.Contract;

/// <summary>The worker protocol's types: what the reference worker writes is what a reader of the contract gets.</summary>
public sealed class WorkerContractTests
{
    [Fact]
    public async Task State_FromTheReferenceWorker_FillsEveryContractField()
    {
        await using var host = await TestWorkers.StartAsync(kvBlocks: 1000);
        using var http = TestWorkers.Http(host);
        var bytes = await http.GetByteArrayAsync(new Uri("/worker/state", UriKind.Relative));

        var state = JsonSerializer.Deserialize(bytes, WorkerContractJson.Default.WorkerStateBody)!;

        var missing = typeof(WorkerStateBody).GetProperties()
            .Where(p => Nullable.GetUnderlyingType(p.PropertyType) is not null || p.PropertyType == typeof(string))
            .Where(p => p.Name != nameof(WorkerStateBody.KvEvictionAgeSeconds) && p.GetValue(state) is null)
            .Select(p => p.Name)
            .ToList();
        Assert.Empty(missing);
        Assert.True(state.ReportsKvEvictionAge);
        Assert.Null(state.KvEvictionAgeSeconds); // nothing evicted yet: present, null
        Assert.Equal(1000, state.KvBlocksTotal);
    }

    [Fact]
    public void State_AbsentEvictionAge_IsNotReported_WhileNullMeansNothingEvictedYet()
    {
        var absent = JsonSerializer.Deserialize("""{"waiting_requests":2}""", WorkerContractJson.Default.WorkerStateBody)!;
        var nothingYet = JsonSerializer.Deserialize("""{"kv_eviction_age_s":null}""", WorkerContractJson.Default.WorkerStateBody)!;

        Assert.False(absent.ReportsKvEvictionAge);
        Assert.Equal(2, absent.WaitingRequests);
        Assert.Null(absent.KvBlocksTotal);
        Assert.True(nothingYet.ReportsKvEvictionAge);
        Assert.Null(nothingYet.KvEvictionAgeSeconds);
    }

    [Fact]
    public void KvEvent_RoundTrips_WithWireNames()
    {
        var e = new KvEvent(9, KvEventType.PinDropped, [1UL, ulong.MaxValue], 5, KvMedium.Cpu, 16);

        string json = JsonSerializer.Serialize(e, WorkerContractJson.Default.KvEvent);

        Assert.Contains("\"type\":\"pin_dropped\"", json, StringComparison.Ordinal);
        Assert.Contains("\"medium\":\"cpu\"", json, StringComparison.Ordinal);
        var back = JsonSerializer.Deserialize(json, WorkerContractJson.Default.KvEvent)!;
        Assert.Equal(e.Seq, back.Seq);
        Assert.Equal(e.Type, back.Type);
        Assert.Equal(e.BlockHashes, back.BlockHashes);
        Assert.Equal(e.ParentBlockHash, back.ParentBlockHash);
        Assert.Equal(e.Medium, back.Medium);
        Assert.Equal(16, back.BlockSize);
    }

    [Theory]
    [InlineData("""{"seq":1,"type":0}""")] // enums are names, never numbers
    [InlineData("""{"seq":1,"type":"stored","medium":"disk"}""")]
    [InlineData("""{"type":"stored"}""")] // seq is required
    public void KvEvent_OffContract_IsAJsonError(string json) =>
        Assert.ThrowsAny<JsonException>(() => JsonSerializer.Deserialize(json, WorkerContractJson.Default.KvEvent));

    [Fact]
    public void RetainBody_WritesOnlyTheFieldsItHas()
    {
        string json = JsonSerializer.Serialize(new RetainBody { SessionId = "s", TtlMs = 500, Tier = KvPinTier.Host }, WorkerContractJson.Default.RetainBody);

        Assert.Equal("""{"session_id":"s","ttl_ms":500,"tier":"host"}""", json);
    }
}
