using System.Text.Json.Serialization;

namespace Worker.Contract;

/// <summary>An enum on the wire is one of its names (<see cref="JsonStringEnumMemberNameAttribute"/>), never a number.</summary>
public sealed class WireEnumConverter<TEnum>() : JsonStringEnumConverter<TEnum>(namingPolicy: null, allowIntegerValues: false)
    where TEnum : struct, Enum;
