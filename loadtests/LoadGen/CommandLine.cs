using System.CommandLine;
using System.Globalization;
using Cli;
using LoadGen.Client;
using LoadGen.Scenarios;

namespace LoadGen;

/// <summary>
/// Parsed command line of the load generator (System.CommandLine through <see cref="CliApp"/>: <c>--help</c> lists every
/// option with its default; every bad option is reported at once).
/// </summary>
public sealed class CommandLine
{
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

    /// <summary>
    /// The load generator's command line: a valid one is bound to a <see cref="CommandLine"/> and its scenario's plan and
    /// handed to <paramref name="run"/>.
    /// </summary>
    public static CliApp CreateApp(Func<CommandLine, ScenarioPlan, int> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        var spec = new Spec();
        var app = new CliApp(spec.Root, errorExitCode: 1); // 2 means a request ended without an outcome
        app.Handle(
            spec.Root,
            input =>
            {
                var cl = spec.Bind(input);
                ScenarioPlan? plan = null;
                if (input.Errors.Count == 0)
                {
                    try
                    {
                        plan = ScenarioCatalog.Build(cl.Scenario, cl.ScenarioOptions);
                    }
                    catch (ArgumentException e)
                    {
                        input.Error(e.Message);
                    }
                }

                return (cl, plan);
            },
            bound => run(bound.cl, bound.plan!));
        return app;
    }

    /// <summary>Parses <paramref name="args"/>; throws <see cref="ArgumentException"/> naming every problem on bad input.</summary>
    public static CommandLine Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var spec = new Spec();
        var input = new CliInput(spec.Root.Parse(args));
        var cl = spec.Bind(input);
        return input.Errors.Count == 0 ? cl : throw new ArgumentException(string.Join(Environment.NewLine, input.Errors));
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

    private static string Seconds(TimeSpan t) => t.TotalSeconds.ToString(CultureInfo.InvariantCulture) + "s";

    // The options (one set per parse: System.CommandLine options belong to their command) and their binding.
    private sealed class Spec
    {
        private static readonly ScenarioOptions D = new();
        private static readonly AgentScaling A = new();
        private static readonly ClientTimeouts T = ClientTimeouts.Default;

        private readonly Option<string?> _scenario = CliOptions.OptionalText("--scenario", "overhead | shared-prefix | multi-turn | agent | noisy-neighbour | failover (required)", "none");
        private readonly Option<string> _target = CliOptions.Create("--target", "base URL of the gateway or a worker", "http://127.0.0.1:8080");
        private readonly Option<string[]> _key = new("--key") { Description = "API key of one tenant; repeat for several tenants [default: none]" };
        private readonly Option<string?> _keysFile = CliOptions.OptionalText("--keys-file", "one tenant a line: \"KEY\" or \"NAME KEY\" (# comments)", "none");
        private readonly Option<int> _tenants = CliOptions.Create("--tenants", "N tenants without keys (labels only; direct-to-worker runs)", 0);
        private readonly Option<string> _duration = CliOptions.Create("--duration", "issue requests for this long (30s, 2m, 500ms)", Seconds(D.Duration));
        private readonly Option<long> _maxRequests = CliOptions.Create("--max-requests", "stop issuing after N requests (0 = no limit)", 0L);
        private readonly Option<double?> _rate = CliOptions.OptionalValue<double>("--rate", "open-loop arrivals per second (per tenant for noisy-neighbour)", "the scenario's");
        private readonly Option<int?> _concurrency = CliOptions.OptionalValue<int>("--concurrency", "closed loop: C concurrent users instead of a rate", "open loop");
        private readonly Option<string> _ramp = CliOptions.Create("--ramp", "ramp the rate up from 0 over this long first", "0s");
        private readonly Option<string?> _arrivalsFrom = CliOptions.OptionalText("--arrivals-from", "replay a trace's arrival times (Mooncake .jsonl or Azure .csv) instead of Poisson", "Poisson arrivals");
        private readonly Option<double> _arrivalSpeedup = CliOptions.Create("--arrival-speedup", "divide the trace's gaps by X (1 = real time)", 1.0);
        private readonly Option<string?> _model = CliOptions.OptionalText("--model", "model id", "the first of GET /v1/models");
        private readonly Option<string> _out = CliOptions.Create("--out", "report path (.md and .svg are written beside it)", "report.json");
        private readonly Option<string?> _recordWorkload = CliOptions.OptionalText("--record-workload", "also write what was sent as the simulator's canonical jsonl (same prompts, hash ids)", "none");
        private readonly Option<int> _seed = CliOptions.Create("--seed", "seed of all random choices", 42);
        private readonly Option<int> _warmup = CliOptions.Create("--warmup", "send N unmeasured requests first (4 at a time)", 0);
        private readonly Option<int?> _promptTokens = CliOptions.OptionalValue<int>("--prompt-tokens", "user prompt size", "the scenario's");
        private readonly Option<int?> _maxTokens = CliOptions.OptionalValue<int>("--max-tokens", "output size", "the scenario's");
        private readonly Option<bool> _ignoreEos = CliOptions.Create("--ignore-eos", "ask the server to ignore end-of-sequence", false);
        private readonly Option<string> _timeout = CliOptions.Create("--timeout", "per-request limit", Seconds(T.Total));
        private readonly Option<string> _ttftTimeout = CliOptions.Create("--ttft-timeout", "limit for the first token", Seconds(T.FirstToken));
        private readonly Option<string> _idleTimeout = CliOptions.Create("--idle-timeout", "limit between two chunks", Seconds(T.Idle));
        private readonly Option<int> _prefixes = CliOptions.Create("--prefixes", "shared-prefix: shared prefixes", D.Prefixes);
        private readonly Option<int> _prefixTokens = CliOptions.Create("--prefix-tokens", "shared-prefix: tokens per prefix", D.PrefixTokens);
        private readonly Option<double> _zipf = CliOptions.Create("--zipf", "shared-prefix: Zipf exponent of prefix popularity", D.ZipfS);
        private readonly Option<int> _users = CliOptions.Create("--users", "shared-prefix: users", D.Users);
        private readonly Option<int> _turns = CliOptions.Create("--turns", "multi-turn: turns per conversation", D.Turns);
        private readonly Option<string> _think = CliOptions.Create("--think", "multi-turn: think time between turns", Seconds(D.Think));
        private readonly Option<string> _traceDir = CliOptions.Create("--trace-dir", "agent: folder of Weka session traces", D.TraceDir);
        private readonly Option<int> _sessions = CliOptions.Create("--sessions", "agent: sessions replayed", D.TraceSessions);
        private readonly Option<double> _agentScale = CliOptions.Create("--agent-scale", "agent: divide the trace's token counts by S", A.Scale);
        private readonly Option<double> _timeScale = CliOptions.Create("--time-scale", "agent: multiply the trace's think times by F", A.TimeScale);
        private readonly Option<string> _maxThink = CliOptions.Create("--max-think", "agent: cap of one think time", Seconds(A.MaxThink));
        private readonly Option<int> _maxTurns = CliOptions.Create("--max-turns", "agent: turns per session", A.MaxTurns);
        private readonly Option<bool> _noAgentTools = CliOptions.Create("--no-agent-tools", "agent: one user message per request, no tools (the replay before tool calls)", false);
        private readonly Option<double> _noisyFactor = CliOptions.Create("--noisy-factor", "noisy-neighbour: the noisy tenant's rate multiple (0 = alone baseline)", D.NoisyFactor);
        private readonly Option<string?> _killAt = CliOptions.OptionalText("--kill-at", "failover: run --kill-cmd this long into the run", "never");
        private readonly Option<string?> _killCmd = CliOptions.OptionalText("--kill-cmd", "failover: shell command that kills a worker", "none");
        private readonly Option<bool> _plain = CliOptions.Create("--plain", "plain progress lines even on a terminal", false);
        private readonly Option<string> _progressInterval = CliOptions.Create("--progress-interval", "plain progress interval", "5s");

        public Spec()
        {
            Root = new RootCommand("Load generator for the gateway and its workers (docs/benchmarks.md).");
            Root.AddOptions(
                _scenario, _target, _key, _keysFile, _tenants, _duration, _maxRequests, _rate, _concurrency, _ramp, _arrivalsFrom,
                _arrivalSpeedup, _model, _out, _recordWorkload, _seed, _warmup, _promptTokens, _maxTokens, _ignoreEos, _timeout,
                _ttftTimeout, _idleTimeout, _prefixes, _prefixTokens, _zipf, _users, _turns, _think, _traceDir, _sessions, _agentScale,
                _timeScale, _maxThink, _maxTurns, _noAgentTools, _noisyFactor, _killAt, _killCmd, _plain, _progressInterval);
        }

        public RootCommand Root { get; }

        public CommandLine Bind(CliInput input)
        {
            var cl = new CommandLine();
            TimeSpan Duration(Option<string> option)
            {
                string text = input.Get(option);
                try
                {
                    return ParseDuration(option.Name, text);
                }
                catch (ArgumentException e)
                {
                    input.Error(e.Message);
                    return TimeSpan.Zero;
                }
            }

            int? Positive(Option<int?> option) => input.GetGiven(option) is { } v ? (v > 0 ? v : Fail(option, v)) : null;
            int? Fail(Option option, int v)
            {
                input.Error($"{option.Name} must be a positive integer, got {v}");
                return null;
            }

            cl.Scenario = input.GetGiven(_scenario) ?? "";
            if (cl.Scenario.Length == 0)
            {
                input.Error("--scenario is required");
            }

            string t = input.Get(_target);
            if (!Uri.TryCreate(t.EndsWith('/') ? t : t + "/", UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            {
                input.Error($"--target must be an http(s) URL, got '{t}'");
            }
            else
            {
                cl.Target = uri;
            }

            cl.Model = input.GetGiven(_model);
            cl.Out = input.Get(_out);
            cl.RecordWorkload = input.GetGiven(_recordWorkload);
            cl.MaxRequests = input.InRange(_maxRequests, 0, long.MaxValue);
            cl.Seed = input.Get(_seed);
            cl.Warmup = input.InRange(_warmup, 0, 1_000_000);
            cl.Plain = input.Get(_plain);
            cl.ProgressInterval = Duration(_progressInterval);
            var duration = Duration(_duration);
            double? rate = input.GetGiven(_rate);
            if (rate is { } r && !(r > 0 && !double.IsInfinity(r)))
            {
                input.Error($"--rate must be a positive number, got {r}");
            }

            var tenants = Tenants(input);
            double arrivalSpeedup = input.InRange(_arrivalSpeedup, double.Epsilon, double.MaxValue);
            string? arrivalsFrom = input.GetGiven(_arrivalsFrom);
            IReadOnlyList<TimeSpan>? arrivals = null;
            if (arrivalsFrom is not null)
            {
                if (!File.Exists(arrivalsFrom))
                {
                    input.Error($"arrivals file not found: {arrivalsFrom}");
                }
                else if (input.Errors.Count == 0)
                {
                    arrivals = LoadGen.Load.TraceArrivals.Load(arrivalsFrom, arrivalSpeedup, duration);
                }
            }

            var total = Duration(_timeout);
            cl.Timeouts = new ClientTimeouts(Duration(_ttftTimeout), Duration(_idleTimeout), total);
            string? killAt = input.GetGiven(_killAt);
            cl.ScenarioOptions = new ScenarioOptions
            {
                Tenants = tenants,
                Duration = duration,
                Rate = rate,
                Concurrency = Positive(_concurrency),
                Ramp = Duration(_ramp),
                Arrivals = arrivals,
                PromptTokens = Positive(_promptTokens),
                MaxTokens = Positive(_maxTokens),
                IgnoreEos = input.Get(_ignoreEos),
                Prefixes = input.InRange(_prefixes, 1, int.MaxValue),
                PrefixTokens = input.InRange(_prefixTokens, 1, int.MaxValue),
                ZipfS = input.Get(_zipf),
                Users = input.InRange(_users, 1, int.MaxValue),
                Turns = input.InRange(_turns, 1, int.MaxValue),
                Think = Duration(_think),
                TraceDir = input.Get(_traceDir),
                TraceSessions = input.InRange(_sessions, 1, int.MaxValue),
                Agent = new AgentScaling
                {
                    Scale = input.InRange(_agentScale, double.Epsilon, double.MaxValue),
                    TimeScale = input.InRange(_timeScale, double.Epsilon, double.MaxValue),
                    MaxThink = Duration(_maxThink),
                    MaxTurns = input.InRange(_maxTurns, 1, int.MaxValue),
                    ToolCalls = !input.Get(_noAgentTools),
                },
                NoisyFactor = input.InRange(_noisyFactor, 0, double.MaxValue),
                KillAt = killAt is null ? null : ParseDurationOrError(input, _killAt.Name, killAt),
                KillCommand = input.GetGiven(_killCmd),
            };

            // Echo the load-shaping settings (never keys or the kill command's text).
            var s = cl.Settings;
            s["duration_s"] = duration.TotalSeconds.ToString(CultureInfo.InvariantCulture);
            s["max_requests"] = cl.MaxRequests.ToString(CultureInfo.InvariantCulture);
            s["rate"] = rate?.ToString(CultureInfo.InvariantCulture) ?? "default";
            s["arrivals"] = arrivals is null ? "poisson" : $"trace {Path.GetFileName(arrivalsFrom)} /{arrivalSpeedup.ToString(CultureInfo.InvariantCulture)} ({arrivals.Count} in window)";
            s["concurrency"] = cl.ScenarioOptions.Concurrency?.ToString(CultureInfo.InvariantCulture) ?? "-";
            s["tenants"] = tenants.Count.ToString(CultureInfo.InvariantCulture);
            s["seed"] = cl.Seed.ToString(CultureInfo.InvariantCulture);
            s["warmup"] = cl.Warmup.ToString(CultureInfo.InvariantCulture);
            s["timeout_s"] = total.TotalSeconds.ToString(CultureInfo.InvariantCulture);
            return cl;
        }

        private static TimeSpan? ParseDurationOrError(CliInput input, string option, string text)
        {
            try
            {
                return ParseDuration(option, text);
            }
            catch (ArgumentException e)
            {
                input.Error(e.Message);
                return null;
            }
        }

        private List<Tenant> Tenants(CliInput input)
        {
            var tenants = new List<Tenant>();
            var keys = input.Get(_key) ?? [];
            for (int k = 0; k < keys.Length; k++)
            {
                tenants.Add(new Tenant($"tenant-{k + 1}", keys[k]));
            }

            if (input.GetGiven(_keysFile) is { } keysFile)
            {
                if (!File.Exists(keysFile))
                {
                    input.Error($"keys file not found: {keysFile}");
                }
                else
                {
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
            }

            int tenantCount = input.InRange(_tenants, 0, 1_000_000);
            for (int k = tenants.Count; k < tenantCount; k++)
            {
                tenants.Add(new Tenant($"tenant-{k + 1}", null));
            }

            if (tenants.Count == 0)
            {
                tenants.Add(new Tenant("tenant-1", null));
            }

            return tenants;
        }
    }
}
