using System.Globalization;
using System.Text.Json;

namespace Simulator.Compare;

/// <summary>
/// A comparison suite (JSON, comments allowed): traces, load levels, seeds and routing policies, run by
/// <c>simulator compare --suite FILE</c>, which writes the tables and charts the docs quote.
/// <code>
/// {"name": "routing", "traces": "../shared/traces", "out": "docs/results", "seeds": [1,2,3], "loads": [0.5,1,2],
///  "routing": ["round-robin", "kv-aware", ...], "reference": "kv-aware",
///  "scenarios": [{"name": "mooncake", "trace": "mooncake_fast25/synthetic_trace.jsonl", "format": "mooncake", "workers": 8}],
///  "isolation": []}
/// </code>
/// The report is <c>out/NAME.md</c> and <c>out/NAME-ttft.svg</c>. <c>traces</c> and <c>out</c> resolve against the working directory (the repository root); a scenario's <c>trace</c>
/// against <c>traces</c>. A scenario takes every scenario-file key (docs/simulator.md) plus <c>name</c>, <c>title</c> and
/// <c>load_by</c> (<c>time_scale</c>: open-loop arrivals sped up by the load factor; <c>session_rate</c>: root sessions
/// start that much faster; default <c>session_rate</c> for weka, else <c>time_scale</c>). <c>isolation</c> holds
/// scenario objects (with their own <c>scheduling</c> / <c>routing</c> lists) for tenant-isolation comparisons, run at the
/// trace's own load and written as one table each.
/// </summary>
public sealed class Suite
{
    private static readonly HashSet<string> SuiteKeys = ["name", "title", "load_by"];

    /// <summary>File name stem of the report (<c>NAME.md</c>, <c>NAME-ttft.svg</c>). Default <c>routing</c>.</summary>
    public string Name { get; private set; } = "routing";

    /// <summary>Where the tables and charts go.</summary>
    public string Out { get; private set; } = "docs/results";

    /// <summary>Trace folder scenario traces are relative to.</summary>
    public string Traces { get; private set; } = "../shared/traces";

    /// <summary>Seeds every combination runs with.</summary>
    public List<int> Seeds { get; private set; } = [1];

    /// <summary>Load factors relative to each trace's own rate.</summary>
    public List<double> Loads { get; private set; } = [1.0];

    /// <summary>Routing policies compared.</summary>
    public List<string> Routing { get; private set; } = [];

    /// <summary>The policy the verdicts are about (compared with the best of the others).</summary>
    public string Reference { get; private set; } = "kv-aware";

    /// <summary>Routing scenarios.</summary>
    public List<SuiteScenario> Scenarios { get; } = [];

    /// <summary>Tenant-isolation scenarios (scheduling comparisons).</summary>
    public List<SuiteScenario> Isolation { get; } = [];

    /// <summary>Path of the suite file.</summary>
    public string Path { get; private set; } = "";

    /// <summary>Reads and checks a suite; the overrides replace its <c>traces</c> and <c>out</c>. Every problem is reported at once.</summary>
    public static Suite Load(string path, string? tracesOverride = null, string? outOverride = null)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(path), new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{path}: a suite file is a JSON object");
        }

        var suite = new Suite { Path = path };
        var errors = new List<string>();
        var scenarios = new List<JsonElement>();
        var isolation = new List<JsonElement>();
        foreach (var p in root.EnumerateObject())
        {
            try
            {
                switch (p.Name)
                {
                    case "name": suite.Name = p.Value.GetString()!; break;
                    case "out": suite.Out = p.Value.GetString()!; break;
                    case "traces": suite.Traces = p.Value.GetString()!; break;
                    case "seeds": suite.Seeds = [.. p.Value.EnumerateArray().Select(x => x.GetInt32())]; break;
                    case "loads": suite.Loads = [.. p.Value.EnumerateArray().Select(x => x.GetDouble())]; break;
                    case "routing": suite.Routing = [.. p.Value.EnumerateArray().Select(x => x.GetString()!)]; break;
                    case "reference": suite.Reference = p.Value.GetString()!; break;
                    case "scenarios": scenarios.AddRange(p.Value.EnumerateArray().Select(x => x.Clone())); break;
                    case "isolation": isolation.AddRange(p.Value.EnumerateArray().Select(x => x.Clone())); break;
                    default: errors.Add($"unknown key '{p.Name}'"); break;
                }
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                errors.Add($"'{p.Name}': {e.Message}");
            }
        }

        suite.Traces = tracesOverride ?? suite.Traces;
        suite.Out = outOverride ?? suite.Out;

        string traces = System.IO.Path.GetFullPath(suite.Traces);
        foreach (var (list, target, label) in new[] { (scenarios, suite.Scenarios, "scenarios"), (isolation, suite.Isolation, "isolation") })
        {
            for (int i = 0; i < list.Count; i++)
            {
                try
                {
                    target.Add(SuiteScenario.Parse(list[i], traces, $"{path}: {label}[{i}]", SuiteKeys));
                }
                catch (FormatException e)
                {
                    errors.Add(e.Message);
                }
            }
        }

        if (suite.Seeds.Count == 0 || suite.Loads.Count == 0 || suite.Loads.Any(l => !(l > 0) || double.IsInfinity(l)))
        {
            errors.Add("seeds and loads must be non-empty, loads > 0");
        }

        if (suite.Scenarios.Count == 0 || suite.Routing.Count == 0)
        {
            errors.Add("a suite needs scenarios and routing policies");
        }

        if (string.IsNullOrEmpty(suite.Name) || suite.Name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
        {
            errors.Add("name: letters, digits, - and _ only");
        }

        if (!suite.Routing.Contains(suite.Reference))
        {
            errors.Add($"reference '{suite.Reference}' is not in routing");
        }
        else if (suite.Routing.All(n => n == suite.Reference))
        {
            errors.Add($"routing needs a policy besides the reference '{suite.Reference}' to compare it with");
        }

        foreach (var name in suite.Scenarios.Concat(suite.Isolation).GroupBy(s => s.Name).Where(g => g.Count() > 1))
        {
            errors.Add($"scenario name '{name.Key}' used twice");
        }

        return errors.Count == 0 ? suite : throw new FormatException(string.Join("; ", errors));
    }
}

/// <summary>One scenario of a suite: a name, a title, how load scales, and the simulator settings.</summary>
public sealed class SuiteScenario
{
    /// <summary>Short name (file names, table headings).</summary>
    public required string Name { get; init; }

    /// <summary>One-line description.</summary>
    public required string Title { get; init; }

    /// <summary><c>time_scale</c> or <c>session_rate</c>.</summary>
    public required string LoadBy { get; init; }

    /// <summary>The settings at the trace's own load (copied per load level and seed).</summary>
    public required Scenario Settings { get; init; }

    /// <summary>The settings at <paramref name="load"/> times the trace's own rate.</summary>
    public Scenario At(double load)
    {
        var s = Settings.WithSeed(Settings.Seed);
        s.Seeds = [.. Settings.Seeds];
        s.Routing = [.. Settings.Routing];
        s.Scheduling = [.. Settings.Scheduling];
        s.Retention = [.. Settings.Retention];
        if (LoadBy == "session_rate")
        {
            s.SessionRate = Settings.SessionRate * load;
        }
        else
        {
            s.TimeScale = Settings.TimeScale * load;
        }

        return s;
    }

    internal static SuiteScenario Parse(JsonElement e, string traces, string source, IReadOnlySet<string> suiteKeys)
    {
        if (e.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException($"{source}: a scenario is a JSON object");
        }

        string? name = e.TryGetProperty("name", out var n) ? n.GetString() : null;
        if (string.IsNullOrWhiteSpace(name) || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new FormatException($"{source}: 'name' is required (letters, digits, - _ .)");
        }

        var s = new Scenario();
        s.Apply(e, traces, $"{source} ({name})", suiteKeys);
        string loadBy = e.TryGetProperty("load_by", out var lb) ? lb.GetString() ?? "" : s.Format == Traces.TraceFormat.Weka ? "session_rate" : "time_scale";
        if (loadBy is not ("time_scale" or "session_rate"))
        {
            throw new FormatException($"{source} ({name}): load_by must be time_scale or session_rate");
        }

        if (loadBy == "session_rate" && !(s.SessionRate > 0))
        {
            throw new FormatException($"{source} ({name}): load_by session_rate needs session_rate > 0");
        }

        string title = e.TryGetProperty("title", out var t) ? t.GetString() ?? name : name;
        return new SuiteScenario { Name = name, Title = title, LoadBy = loadBy, Settings = s };
    }

    /// <summary>"0.5x" style label of a load factor.</summary>
    public static string LoadLabel(double load) => load.ToString("0.##", CultureInfo.InvariantCulture) + "x";
}
