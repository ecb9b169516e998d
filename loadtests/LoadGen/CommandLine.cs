using System.Globalization;
using LoadGen.Client;
using LoadGen.Scenarios;

namespace LoadGen;

/// <summary>Parsed command line of the load generator.</summary>
public sealed class CommandLine
{
    /// <summary>Usage text.</summary>
    public const string Usage = """
        Usage: LoadGen --scenario NAME --target URL [options]

          --scenario NAME        overhead | shared-prefix | multi-turn | agent | noisy-neighbour | failover
          --target URL           base URL of the gateway or a worker (default http://127.0.0.1:8080)
          --key KEY              API key of one tenant; repeat for several tenants
          --keys-file FILE       one tenant a line: "KEY" or "NAME KEY" (# comments)
          --tenants N            N tenants without keys (labels only; direct-to-worker runs)
          --duration D           issue requests for this long (30s, 2m, 500ms; default 30s)
          --max-requests N       stop issuing after N requests
          --rate R               open-loop arrivals per second (per tenant for noisy-neighbour)
          --concurrency C        closed loop: C concurrent users instead of a rate
          --ramp D               ramp the rate up from 0 over D first
          --arrivals-from FILE   replay a trace's arrival times (Mooncake .jsonl or Azure .csv) instead of Poisson
          --arrival-speedup X    divide the trace's gaps by X (default 1 = real time)
          --model M              model id (default: first of GET /v1/models)
          --out FILE             report path (default report.json; .md and .svg are written beside it)
          --record-workload FILE also write what was sent as the simulator's canonical jsonl (same prompts, hash ids)
          --seed N               seed of all random choices (default 42)
          --warmup N             send N unmeasured requests first (4 at a time)
          --prompt-tokens N      user prompt size; --max-tokens N  output size; --ignore-eos
          --timeout D            per-request limit (120s); --ttft-timeout D (60s); --idle-timeout D (30s)
          --prefixes N --prefix-tokens N --zipf S --users N          shared-prefix
          --turns N --think D                                        multi-turn
          --trace-dir DIR --sessions N --agent-scale S --time-scale F --max-think D --max-turns N   agent
          --no-agent-tools       agent: one user message per request, no tools (the replay before tool calls)
          --noisy-factor F                                           noisy-neighbour (default 10; 0 = alone baseline)
          --kill-at D --kill-cmd CMD                                 failover
          --plain                plain progress lines even on a terminal; --progress-interval D (5s)
        """;

    /// <summary>Scenario name.</summary>
    public string Scenario { get; private set; } = "";

    /// <summary>Target base URL.</summary>
    public Uri Target { get; private set; } = new("http://127.0.0.1:8080/");

    /// <summary>Model id, or null to discover.</summary>
    public string? Model { get; private set; }

    /// <summary>Report path.</summary>
    public string Out { get; private set; } = "report.json";

    /// <summary>Write what was sent as the simulator's canonical jsonl here (null: do not).</summary>
    public string? RecordWorkload { get; private set; }

    /// <summary>Stop after this many requests (0 = no limit).</summary>
    public long MaxRequests { get; private set; }

    /// <summary>Seed.</summary>
    public int Seed { get; private set; } = 42;

    /// <summary>Requests sent (and not measured) before the run, to warm connections and JIT on both ends.</summary>
    public int Warmup { get; private set; }

    /// <summary>Client limits.</summary>
    public ClientTimeouts Timeouts { get; private set; } = ClientTimeouts.Default;

    /// <summary>Force plain progress lines.</summary>
    public bool Plain { get; private set; }

    /// <summary>Plain progress interval.</summary>
    public TimeSpan ProgressInterval { get; private set; } = TimeSpan.FromSeconds(5);

    /// <summary>Scenario options.</summary>
    public ScenarioOptions ScenarioOptions { get; private set; } = new();

    /// <summary>Settings echoed into the report (no keys).</summary>
    public SortedDictionary<string, string> Settings { get; } = new(StringComparer.Ordinal);

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> with a message on bad input.</summary>
    public static CommandLine Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var cl = new CommandLine();
        var keys = new List<string>();
        var tenants = new List<Tenant>();
        string? keysFile = null;
        int tenantCount = 0;
        TimeSpan duration = TimeSpan.FromSeconds(30), ramp = TimeSpan.Zero, think = TimeSpan.FromSeconds(1);
        double? rate = null;
        int? concurrency = null, promptTokens = null, maxTokens = null;
        bool ignoreEos = false;
        var defaults = new ScenarioOptions();
        int prefixes = defaults.Prefixes, prefixTokens = defaults.PrefixTokens, users = defaults.Users, turns = defaults.Turns, sessions = defaults.TraceSessions;
        double zipf = defaults.ZipfS, noisy = defaults.NoisyFactor;
        string traceDir = defaults.TraceDir;
        var agent = new AgentScaling();
        TimeSpan? killAt = null;
        string? arrivalsFrom = null;
        double arrivalSpeedup = 1;
        string? killCmd = null;
        TimeSpan total = ClientTimeouts.Default.Total, first = ClientTimeouts.Default.FirstToken, idle = ClientTimeouts.Default.Idle;

        for (int i = 0; i < args.Count; i++)
        {
            string a = args[i];
            string Value()
            {
                if (i + 1 >= args.Count)
                {
                    throw new ArgumentException($"{a} needs a value");
                }

                return args[++i];
            }

            switch (a)
            {
                case "--scenario": cl.Scenario = Value(); break;
                case "--target":
                    string t = Value();
                    if (!Uri.TryCreate(t.EndsWith('/') ? t : t + "/", UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                    {
                        throw new ArgumentException($"--target must be an http(s) URL, got '{t}'");
                    }

                    cl.Target = uri;
                    break;
                case "--key": keys.Add(Value()); break;
                case "--keys-file": keysFile = Value(); break;
                case "--tenants": tenantCount = PositiveInt(a, Value()); break;
                case "--duration": duration = ParseDuration(a, Value()); break;
                case "--max-requests": cl.MaxRequests = PositiveInt(a, Value()); break;
                case "--rate": rate = PositiveDouble(a, Value()); break;
                case "--concurrency": concurrency = PositiveInt(a, Value()); break;
                case "--ramp": ramp = ParseDuration(a, Value()); break;
                case "--arrivals-from": arrivalsFrom = Value(); break;
                case "--arrival-speedup": arrivalSpeedup = PositiveDouble(a, Value()); break;
                case "--model": cl.Model = Value(); break;
                case "--out": cl.Out = Value(); break;
                case "--record-workload": cl.RecordWorkload = Value(); break;
                case "--seed": cl.Seed = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--warmup": cl.Warmup = PositiveInt(a, Value()); break;
                case "--prompt-tokens": promptTokens = PositiveInt(a, Value()); break;
                case "--max-tokens": maxTokens = PositiveInt(a, Value()); break;
                case "--ignore-eos": ignoreEos = true; break;
                case "--timeout": total = ParseDuration(a, Value()); break;
                case "--ttft-timeout": first = ParseDuration(a, Value()); break;
                case "--idle-timeout": idle = ParseDuration(a, Value()); break;
                case "--prefixes": prefixes = PositiveInt(a, Value()); break;
                case "--prefix-tokens": prefixTokens = PositiveInt(a, Value()); break;
                case "--zipf": zipf = double.Parse(Value(), CultureInfo.InvariantCulture); break;
                case "--users": users = PositiveInt(a, Value()); break;
                case "--turns": turns = PositiveInt(a, Value()); break;
                case "--think": think = ParseDuration(a, Value()); break;
                case "--trace-dir": traceDir = Value(); break;
                case "--sessions": sessions = PositiveInt(a, Value()); break;
                case "--agent-scale": agent = agent with { Scale = PositiveDouble(a, Value()) }; break;
                case "--time-scale": agent = agent with { TimeScale = PositiveDouble(a, Value()) }; break;
                case "--max-think": agent = agent with { MaxThink = ParseDuration(a, Value()) }; break;
                case "--max-turns": agent = agent with { MaxTurns = PositiveInt(a, Value()) }; break;
                case "--no-agent-tools": agent = agent with { ToolCalls = false }; break;
                case "--noisy-factor": noisy = NonNegativeDouble(a, Value()); break;
                case "--kill-at": killAt = ParseDuration(a, Value()); break;
                case "--kill-cmd": killCmd = Value(); break;
                case "--plain": cl.Plain = true; break;
                case "--progress-interval": cl.ProgressInterval = ParseDuration(a, Value()); break;
                default: throw new ArgumentException($"unknown option '{a}'");
            }
        }

        if (cl.Scenario.Length == 0)
        {
            throw new ArgumentException("--scenario is required");
        }

        for (int k = 0; k < keys.Count; k++)
        {
            tenants.Add(new Tenant($"tenant-{k + 1}", keys[k]));
        }

        if (keysFile is not null)
        {
            if (!File.Exists(keysFile))
            {
                throw new ArgumentException($"keys file not found: {keysFile}");
            }

            foreach (string raw in File.ReadAllLines(keysFile))
            {
                string line = raw.Trim();
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }

                string[] parts = line.Split((char[])[' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                tenants.Add(parts.Length >= 2 ? new Tenant(parts[0], parts[1]) : new Tenant($"tenant-{tenants.Count + 1}", parts[0]));
            }
        }

        for (int k = tenants.Count; k < tenantCount; k++)
        {
            tenants.Add(new Tenant($"tenant-{k + 1}", null));
        }

        if (tenants.Count == 0)
        {
            tenants.Add(new Tenant("tenant-1", null));
        }

        IReadOnlyList<TimeSpan>? arrivals = null;
        if (arrivalsFrom is not null)
        {
            if (!File.Exists(arrivalsFrom))
            {
                throw new ArgumentException($"arrivals file not found: {arrivalsFrom}");
            }

            arrivals = LoadGen.Load.TraceArrivals.Load(arrivalsFrom, arrivalSpeedup, duration);
        }

        cl.Timeouts = new ClientTimeouts(first, idle, total);
        cl.ScenarioOptions = new ScenarioOptions
        {
            Tenants = tenants,
            Duration = duration,
            Rate = rate,
            Concurrency = concurrency,
            Ramp = ramp,
            Arrivals = arrivals,
            PromptTokens = promptTokens,
            MaxTokens = maxTokens,
            IgnoreEos = ignoreEos,
            Prefixes = prefixes,
            PrefixTokens = prefixTokens,
            ZipfS = zipf,
            Users = users,
            Turns = turns,
            Think = think,
            TraceDir = traceDir,
            TraceSessions = sessions,
            Agent = agent,
            NoisyFactor = noisy,
            KillAt = killAt,
            KillCommand = killCmd,
        };

        // Echo the load-shaping settings (never keys or the kill command's text).
        var s = cl.Settings;
        s["duration_s"] = duration.TotalSeconds.ToString(CultureInfo.InvariantCulture);
        s["max_requests"] = cl.MaxRequests.ToString(CultureInfo.InvariantCulture);
        s["rate"] = rate?.ToString(CultureInfo.InvariantCulture) ?? "default";
        s["arrivals"] = arrivals is null ? "poisson" : $"trace {Path.GetFileName(arrivalsFrom)} /{arrivalSpeedup.ToString(CultureInfo.InvariantCulture)} ({arrivals.Count} in window)";
        s["concurrency"] = concurrency?.ToString(CultureInfo.InvariantCulture) ?? "-";
        s["tenants"] = tenants.Count.ToString(CultureInfo.InvariantCulture);
        s["seed"] = cl.Seed.ToString(CultureInfo.InvariantCulture);
        s["warmup"] = cl.Warmup.ToString(CultureInfo.InvariantCulture);
        s["timeout_s"] = total.TotalSeconds.ToString(CultureInfo.InvariantCulture);
        return cl;
    }

    /// <summary>Parses "30s", "2m", "500ms", "1h" or a number of seconds.</summary>
    public static TimeSpan ParseDuration(string option, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var c = CultureInfo.InvariantCulture;
        (string num, double scale) = value switch
        {
            _ when value.EndsWith("ms", StringComparison.Ordinal) => (value[..^2], 0.001),
            _ when value.EndsWith('s') => (value[..^1], 1.0),
            _ when value.EndsWith('m') => (value[..^1], 60.0),
            _ when value.EndsWith('h') => (value[..^1], 3600.0),
            _ => (value, 1.0),
        };
        if (!double.TryParse(num, NumberStyles.Float, c, out double v) || v < 0 || double.IsInfinity(v))
        {
            throw new ArgumentException($"{option}: '{value}' is not a duration (e.g. 30s, 2m, 500ms)");
        }

        return TimeSpan.FromSeconds(v * scale);
    }

    private static int PositiveInt(string option, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : throw new ArgumentException($"{option}: '{value}' is not a positive integer");

    private static double NonNegativeDouble(string option, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v >= 0 && !double.IsInfinity(v) ? v : throw new ArgumentException($"{option}: '{value}' is not a number >= 0");

    private static double PositiveDouble(string option, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0 && !double.IsInfinity(v) ? v : throw new ArgumentException($"{option}: '{value}' is not a positive number");
}
