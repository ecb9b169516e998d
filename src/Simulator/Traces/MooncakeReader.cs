using System.Text.Json;

namespace Simulator.Traces;

/// <summary>
/// Mooncake FAST'25 jsonl: <c>{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}</c>, 512-token
/// blocks; no sessions or tenants, so every request is open loop.
/// </summary>
public static class MooncakeReader
{
    /// <summary>Mooncake's block size.</summary>
    public const int BlockSize = 512;

    /// <summary>Reads the file; malformed lines are skipped and reported (or throw when strict).</summary>
    public static TraceLoadResult Read(string path, bool strict)
    {
        var result = new TraceLoadResult();
        string name = Path.GetFileName(path);
        TraceReader.ForEachJsonObject(path, strict, result, (root, line) =>
        {
            double ts = Json.RequireDouble(root, "timestamp");
            int input = Json.RequireInt(root, "input_length");
            int output = Json.RequireInt(root, "output_length");
            long[] ids = Json.RequireLongArray(root, "hash_ids");
            Validate.Lengths(input, output);
            if (ts < 0)
            {
                throw new FormatException("negative timestamp");
            }

            result.Requests.Add(new TraceRequest
            {
                T = ts / 1000.0,
                In = input,
                Out = output,
                BlockSize = BlockSize,
                HashIds = HashIds.Of(ids),
                Source = $"{name}:{line}",
            });
        });

        return result;
    }
}

/// <summary>Small JSON helpers with clear messages.</summary>
internal static class Json
{
    public static double RequireDouble(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
        {
            throw new FormatException($"'{name}' missing or not a number");
        }

        return d;
    }

    public static double OptionalDouble(JsonElement o, string name, double fallback)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return fallback;
        }

        if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d) || !double.IsFinite(d))
        {
            throw new FormatException($"'{name}' is not a number");
        }

        return d;
    }

    public static int RequireInt(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Number)
        {
            throw new FormatException($"'{name}' missing or not a number");
        }

        if (v.TryGetInt32(out int i))
        {
            return i;
        }

        if (v.TryGetDouble(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue)
        {
            return (int)d;
        }

        throw new FormatException($"'{name}' is not an integer");
    }

    public static string? OptionalString(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.String ? v.GetString() : throw new FormatException($"'{name}' is not a string");
    }

    public static long[] RequireLongArray(JsonElement o, string name)
    {
        if (!o.TryGetProperty(name, out var v) || v.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException($"'{name}' missing or not an array");
        }

        return LongArray(v, name);
    }

    public static long[] LongArray(JsonElement v, string name)
    {
        var ids = new long[v.GetArrayLength()];
        int i = 0;
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out long id))
            {
                throw new FormatException($"'{name}[{i}]' is not an integer");
            }

            ids[i++] = id;
        }

        return ids;
    }
}

/// <summary>Shared sanity checks.</summary>
internal static class Validate
{
    public static void Lengths(int input, int output)
    {
        if (input <= 0)
        {
            throw new FormatException($"input tokens must be positive (got {input})");
        }

        if (output < 0)
        {
            throw new FormatException($"output tokens must not be negative (got {output})");
        }
    }
}
