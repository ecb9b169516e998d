using System.Globalization;
using System.Text.Json;
using Simulator.Traces;

namespace Simulator;

/// <summary>Scenario files: JSON objects with the flags' names in snake_case, applied on top of a <see cref="Scenario"/>.</summary>
public sealed partial class Scenario
{
    /// <summary>Loads a scenario file (JSON, snake_case keys); unknown keys are errors.</summary>
    public static Scenario Load(string path)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{path}: a scenario file is a JSON object");
        }

        var s = new Scenario();
        s.Apply(doc.RootElement, Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", path);
        return s;
    }

    /// <summary>
    /// Applies the settings of a scenario object (snake_case keys, as in a scenario file) on top of this scenario;
    /// relative paths resolve against <paramref name="baseDir"/>; keys listed in <paramref name="skip"/> are left to the
    /// caller. Every unknown key or bad value is reported at once, prefixed with <paramref name="source"/>.
    /// </summary>
    public void Apply(JsonElement obj, string baseDir, string source, IReadOnlySet<string>? skip = null)
    {
        var s = this;
        var errors = new List<string>();
        foreach (var p in obj.EnumerateObject())
        {
            if (skip?.Contains(p.Name) == true)
            {
                continue;
            }

            try
            {
                switch (p.Name)
                {
                    case "trace": s.Trace = ResolvePath(baseDir, p.Value.GetString()!); break;
                    case "format":
                        if (!TraceReader.TryParseFormat(p.Value.GetString(), out var f))
                        {
                            throw new FormatException("format must be mooncake, weka, azure or canonical");
                        }

                        s.Format = f;
                        break;
                    case "strict": s.Strict = p.Value.GetBoolean(); break;
                    case "workers": s.Workers = p.Value.GetInt32(); break;
                    case "profile": s.Profile = p.Value.GetString()!; break;
                    case "kv_blocks": s.KvBlocks = p.Value.GetInt32(); break;
                    case "host_kv_blocks": s.HostKvBlocks = p.Value.GetInt32(); break;
                    case "block_size": s.BlockSize = p.Value.GetInt32(); break;
                    case "max_pinned_fraction": s.MaxPinnedFraction = p.Value.GetDouble(); break;
                    case "retention_cost": s.RetentionCostWeight = p.Value.GetDouble(); break;
                    case "retention_budget": s.RetentionPinBudget = p.Value.GetDouble(); break;
                    case "retention_renewals": s.RetentionRenewals = p.Value.GetInt32(); break;
                    case "retention_eviction_age": s.RetentionEvictionAge = p.Value.GetString()!; break;
                    case "retention_guard": s.RetentionGuard = p.Value.GetString()!; break;
                    case "retention_hbm_pins": s.RetentionHbmPins = p.Value.GetString()!; break;
                    case "program_priority":
                        s.ProgramPriority = p.Value.ValueKind switch
                        {
                            JsonValueKind.True => "on",
                            JsonValueKind.False => "off",
                            _ => p.Value.GetString()!,
                        };
                        break;
                    case "max_batch_tokens": s.MaxBatchTokens = p.Value.GetInt32(); break;
                    case "serial_urgent_prefill": s.SerialUrgentPrefill = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() != "off" : p.Value.GetBoolean(); break;
                    case "low_priority_prefill": s.LowPriorityPrefillTokens = p.Value.GetInt32(); break;
                    case "long_prefill_threshold": s.LongPrefillTokenThreshold = p.Value.GetInt32(); break;
                    case "max_running": s.MaxRunningSequences = p.Value.GetInt32(); break;
                    case "max_model_length": s.MaxModelLength = p.Value.GetInt32(); break;
                    case "max_waiting": s.MaxWaitingPerWorker = p.Value.GetInt32(); break;
                    case "max_pending_prefill": s.MaxPendingPrefillTokens = p.Value.GetInt32(); break;
                    case "kv_high_watermark": s.KvHighWatermark = p.Value.GetDouble(); break;
                    case "capacity": s.Capacity = p.Value.GetString()!; break;
                    case "max_in_flight": s.MaxInFlightPerWorker = p.Value.GetInt32(); break;
                    case "tenant_weights": s.TenantWeights = StringOrMap(p.Value); break;
                    case "tenant_rates": s.TenantRates = StringOrMap(p.Value); break;
                    case "tenant_mix": s.TenantMix = StringOrMap(p.Value); break;
                    case "exclude_tenants": s.ExcludeTenants = string.Join(",", ListOf(p.Value)); break;
                    case "locality": s.Locality = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() != "off" : p.Value.GetBoolean(); break;
                    case "picked_worker": s.PickedWorker = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() != "off" : p.Value.GetBoolean(); break;
                    case "lag_bound": s.LagBound = p.Value.GetDouble(); break;
                    case "reserve": s.Reserve = p.Value.GetInt32(); break;
                    case "over_share_factor": s.OverShareFactor = p.Value.GetDouble(); break;
                    case "under_share_priority": s.UnderSharePriority = p.Value.GetInt32(); break;
                    case "overdraw": s.Overdraw = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() != "off" : p.Value.GetBoolean(); break;
                    case "exclusive_priority_prefill": s.ExclusivePriorityPrefill = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() != "off" : p.Value.GetBoolean(); break;
                    case "time_scale": s.TimeScale = p.Value.GetDouble(); break;
                    case "max_requests": s.MaxRequests = p.Value.GetInt32(); break;
                    case "max_sessions": s.MaxSessions = p.Value.GetInt32(); break;
                    case "session_rate": s.SessionRate = p.Value.GetDouble(); break;
                    case "tenants": s.Tenants = p.Value.GetInt32(); break;
                    case "mix_trace": s.MixTrace = ResolvePath(baseDir, p.Value.GetString()!); break;
                    case "mix_format":
                        if (!TraceReader.TryParseFormat(p.Value.GetString(), out var mf))
                        {
                            throw new FormatException("mix_format must be mooncake, weka, azure or canonical");
                        }

                        s.MixFormat = mf;
                        break;
                    case "mix_rate": s.MixRate = p.Value.GetDouble(); break;
                    case "mix_max_requests": s.MixMaxRequests = p.Value.GetInt32(); break;
                    case "cache_salt": s.CacheSalt = p.Value.GetString()!; break;
                    case "kv_events": s.KvEvents = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() != "off" : p.Value.GetBoolean(); break;
                    case "seed": s.Seed = p.Value.GetInt32(); break;
                    case "seeds": s.Seeds = p.Value.ValueKind == JsonValueKind.Array && p.Value.EnumerateArray().All(x => x.ValueKind == JsonValueKind.Number)
                        ? [.. p.Value.EnumerateArray().Select(x => x.GetInt32())]
                        : ParseSeeds(string.Join(',', ListOf(p.Value))); break;
                    case "routing": s.Routing = ListOf(p.Value); break;
                    case "scheduling": s.Scheduling = ListOf(p.Value); break;
                    case "retention": s.Retention = ListOf(p.Value); break;
                    case "requests_out": s.RequestsOut = p.Value.GetBoolean(); break;
                    case "out": s.Out = ResolvePath(baseDir, p.Value.GetString()!); break;
                    case "parallel": s.Parallelism = p.Value.GetInt32(); break;
                    default: errors.Add($"unknown key '{p.Name}'"); break;
                }
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
            {
                errors.Add($"'{p.Name}': {e.Message}");
            }
        }

        if (errors.Count > 0)
        {
            throw new FormatException($"{source}: " + string.Join("; ", errors));
        }
    }

    private static string ResolvePath(string baseDir, string value) => Path.IsPathRooted(value) ? value : Path.Combine(baseDir, value);

    private static List<string> ListOf(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => SplitList(e.GetString()!),
        JsonValueKind.Array => [.. e.EnumerateArray().Select(x => x.GetString() ?? throw new FormatException("list entries must be strings"))],
        _ => throw new FormatException("expected a string or an array of strings"),
    };

    private static string StringOrMap(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => e.GetString()!,
        JsonValueKind.Object => string.Join(",", e.EnumerateObject().Select(p => p.Name + "=" + p.Value.GetDouble().ToString("R", CultureInfo.InvariantCulture))),
        _ => throw new FormatException("expected \"a=1,b=2\" or {\"a\": 1}"),
    };
}
