using System.Text.Json.Serialization;

namespace Worker.Contract;

/// <summary>Source-generated System.Text.Json metadata for every worker-protocol message.</summary>
// A positional parameter without a default (a KV event's seq and type, a snapshot's seq) must be on the wire.
[JsonSourceGenerationOptions(GenerationMode = JsonSourceGenerationMode.Default, RespectRequiredConstructorParameters = true)]
[JsonSerializable(typeof(WorkerStateBody))]
[JsonSerializable(typeof(DrainReply))]
[JsonSerializable(typeof(KvEvent))]
[JsonSerializable(typeof(KvSnapshotBody))]
[JsonSerializable(typeof(KvResyncBody))]
[JsonSerializable(typeof(RetainBody))]
[JsonSerializable(typeof(ReleaseBody))]
[JsonSerializable(typeof(PrefetchBody))]
[JsonSerializable(typeof(RetainReply))]
[JsonSerializable(typeof(ReleaseReply))]
[JsonSerializable(typeof(PrefetchReply))]
public sealed partial class WorkerContractJson : JsonSerializerContext;
