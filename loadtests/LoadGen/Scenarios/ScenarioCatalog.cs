using System.Diagnostics;
using System.Text;
using LoadGen.Client;
using LoadGen.Load;
using LoadGen.Metrics;

namespace LoadGen.Scenarios;

/// <summary>A scenario ready to run: its flows and timed actions.</summary>
public sealed record ScenarioPlan(string Name, IReadOnlyList<Flow> Flows, IReadOnlyList<TimedAction> Actions, string Description);

/// <summary>
/// The built-in scenarios (issue 9). Each is one or more NBomber-style flows; see docs/benchmarks.md.
/// <list type="bullet">
/// <item><c>overhead</c>: small requests (32-token prompt, 16 output tokens) to measure what the gateway adds.</item>
/// <item><c>shared-prefix</c>: system prompts shared across users with Zipf popularity + a unique question.</item>
/// <item><c>multi-turn</c>: chat sessions; each turn re-sends the history including the real previous answer.</item>
/// <item><c>agent</c>: replay of WEKA Claude Code sessions (prompt growth, tool gaps, sub-agents), scaled down.</item>
/// <item><c>noisy-neighbour</c>: one tenant floods at 10× the rate of the others.</item>
/// <item><c>failover</c>: steady load while a worker is killed; every request must end answered or with an error.</item>
/// </list>
/// </summary>
public static class ScenarioCatalog
{
    /// <summary>Scenario names.</summary>
    public static IReadOnlyList<string> Names { get; } = ["overhead", "shared-prefix", "multi-turn", "agent", "noisy-neighbour", "failover"];

    /// <summary>Builds scenario <paramref name="name"/>; throws <see cref="ArgumentException"/> on an unknown name or bad options.</summary>
    public static ScenarioPlan Build(string name, ScenarioOptions o, Func<CancellationToken, Task>? killCallback = null)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.Tenants.Count == 0)
        {
            throw new ArgumentException("at least one tenant is needed");
        }

        return name switch
        {
            "overhead" => Overhead(o),
            "shared-prefix" => SharedPrefix(o),
            "multi-turn" => MultiTurn(o),
            "agent" => Agent(o),
            "noisy-neighbour" or "noisy-neighbor" => Noisy(o),
            "failover" => Failover(o, killCallback),
            _ => throw new ArgumentException($"unknown scenario '{name}' (known: {string.Join(", ", Names)})"),
        };
    }

    /// <summary>The load simulations from --rate / --concurrency / --ramp / --arrivals-from.</summary>
    public static IReadOnlyList<LoadSimulation> Simulations(ScenarioOptions o, double defaultRate, double rateFactor = 1)
    {
        ArgumentNullException.ThrowIfNull(o);
        if (o.Concurrency is int c)
        {
            return [new LoadSimulation.KeepConstant(Math.Max(1, (int)Math.Round(c * rateFactor)), o.Duration)];
        }

        if (o.Arrivals is { } arrivals)
        {
            // A flow at k times the others' load (noisy-neighbour) replays k interleaved copies of the trace.
            return [new LoadSimulation.InjectAt(TraceArrivals.Scale(arrivals, rateFactor))];
        }

        double rate = (o.Rate ?? defaultRate) * rateFactor;
        if (o.Ramp > TimeSpan.Zero)
        {
            return [new LoadSimulation.RampingInject(0, rate, o.Ramp), new LoadSimulation.Inject(rate, o.Duration)];
        }

        return [new LoadSimulation.Inject(rate, o.Duration)];
    }

    private static Tenant TenantOf(ScenarioOptions o, long index) => o.Tenants[(int)(index % o.Tenants.Count)];

    private static ScenarioPlan Overhead(ScenarioOptions o)
    {
        int prompt = o.PromptTokens ?? 32;
        int max = o.MaxTokens ?? 16;
        var flow = new Flow
        {
            Name = "overhead",
            Simulations = Simulations(o, defaultRate: 20),
            NewSession = (i, rng) => new SingleRequestSession(new ChatRequest
            {
                Tenant = TenantOf(o, i),
                Messages = [new ChatMessage("user", "Answer briefly." + SyntheticText.Words((ulong)rng.NextInt64(), prompt))],
                MaxTokens = max,
                IgnoreEos = o.IgnoreEos,
            }),
        };
        return new ScenarioPlan("overhead", [flow], [], $"single requests, {prompt}-token prompt, max_tokens {max}");
    }

    private static ScenarioPlan SharedPrefix(ScenarioOptions o)
    {
        int question = o.PromptTokens ?? 64;
        int max = o.MaxTokens ?? 32;
        var zipf = new ZipfSampler(o.Prefixes, o.ZipfS);
        var prompts = new string[o.Prefixes];
        for (int p = 0; p < prompts.Length; p++)
        {
            prompts[p] = $"You are assistant #{p}." + SyntheticText.Words(SyntheticText.Key(0x5157E4UL, (ulong)p), o.PrefixTokens);
        }

        var flow = new Flow
        {
            Name = "shared-prefix",
            Simulations = Simulations(o, defaultRate: 8),
            NewSession = (i, rng) =>
            {
                int p = zipf.Sample(rng);
                int user = rng.Next(o.Users);
                return new SingleRequestSession(new ChatRequest
                {
                    Tenant = TenantOf(o, i),
                    Messages = [new ChatMessage("system", prompts[p]), new ChatMessage("user", SyntheticText.Words((ulong)rng.NextInt64(), question))],
                    MaxTokens = max,
                    User = $"user-{user}",
                    IgnoreEos = o.IgnoreEos,
                });
            },
        };
        return new ScenarioPlan("shared-prefix", [flow], [],
            $"{o.Prefixes} system prompts of {o.PrefixTokens} tokens, Zipf s={o.ZipfS}, {question}-token question, max_tokens {max}");
    }

    private static ScenarioPlan MultiTurn(ScenarioOptions o)
    {
        int userTokens = o.PromptTokens ?? 96;
        int max = o.MaxTokens ?? 48;
        var flow = new Flow
        {
            Name = "multi-turn",
            Simulations = Simulations(o, defaultRate: 1),
            NewSession = (i, rng) => new ChatSession(TenantOf(o, i), $"chat-{i}", o.Turns, userTokens, max, o.Think, rng, o.IgnoreEos),
        };
        return new ScenarioPlan("multi-turn", [flow], [],
            $"chat sessions of {o.Turns} turns, {userTokens}-token user messages, max_tokens {max}, think ~Exp({o.Think.TotalSeconds:0.##} s)");
    }

    private static ScenarioPlan Agent(ScenarioOptions o)
    {
        if (!Directory.Exists(o.TraceDir))
        {
            throw new ArgumentException($"trace folder not found: {o.TraceDir}");
        }

        var files = Directory.GetFiles(o.TraceDir, "trace_*.json*");
        Array.Sort(files, StringComparer.Ordinal);
        var traces = new List<WekaTrace>();
        foreach (string f in files)
        {
            if (traces.Count >= o.TraceSessions)
            {
                break;
            }

            var t = WekaTrace.Load(f);
            if (t.Requests.Count > 0)
            {
                traces.Add(t);
            }
        }

        if (traces.Count == 0)
        {
            throw new ArgumentException($"no traces in {o.TraceDir}");
        }

        var flow = new Flow
        {
            Name = "agent",
            Simulations = Simulations(o, defaultRate: 0.5),
            NewSession = (i, rng) => new AgentSession(traces[(int)(i % traces.Count)], TenantOf(o, i), $"agent-{i}", o.Agent),
        };
        return new ScenarioPlan("agent", [flow], [],
            $"{traces.Count} WEKA v8 sessions, tokens /{o.Agent.Scale}, gaps x{o.Agent.TimeScale} (max {o.Agent.MaxThink.TotalSeconds} s), <= {o.Agent.MaxTurns} turns, "
            + (o.Agent.ToolCalls ? "tool_use turns sent with tools + tool_choice required, results appended" : "no tools (one user message per request)"));
    }

    private static ScenarioPlan Noisy(ScenarioOptions o)
    {
        if (o.Tenants.Count < 2)
        {
            throw new ArgumentException("noisy-neighbour needs at least two tenants (--key twice, a keys file, or --tenants N)");
        }

        int prompt = o.PromptTokens ?? 256;
        int max = o.MaxTokens ?? 64;
        var flows = new List<Flow>();
        for (int t = 0; t < o.Tenants.Count; t++)
        {
            var tenant = o.Tenants[t];
            double factor = t == 0 ? o.NoisyFactor : 1;
            flows.Add(new Flow
            {
                Name = t == 0 ? $"noisy:{tenant.Name}" : $"quiet:{tenant.Name}",
                // Factor 0 = the "alone" baseline: the noisy flow stays (flow indices, hence every quiet flow's arrival
                // and prompt seeds, are unchanged) but sends nothing, so the quiet tenants replay exactly the same load.
                Simulations = factor == 0 ? [] : Simulations(o, defaultRate: 1, rateFactor: factor),
                NewSession = (i, rng) => new SingleRequestSession(new ChatRequest
                {
                    Tenant = tenant,
                    Messages = [new ChatMessage("user", SyntheticText.Words((ulong)rng.NextInt64(), prompt))],
                    MaxTokens = max,
                    IgnoreEos = o.IgnoreEos,
                }),
            });
        }

        return new ScenarioPlan("noisy-neighbour", flows, [],
            $"{o.Tenants.Count} tenants; {o.Tenants[0].Name} "
            + (o.NoisyFactor == 0 ? "sends nothing (alone baseline: compare against the gateway under fcfs, never the scheduler under test)" : $"at {o.NoisyFactor}x the others' rate")
            + $"; {prompt}-token prompts, max_tokens {max}");
    }

    private static ScenarioPlan Failover(ScenarioOptions o, Func<CancellationToken, Task>? killCallback)
    {
        int prompt = o.PromptTokens ?? 128;
        int max = o.MaxTokens ?? 64;
        var at = o.KillAt ?? TimeSpan.FromTicks(o.Duration.Ticks * 2 / 5);
        var actions = new List<TimedAction>();
        if (killCallback is not null)
        {
            actions.Add(new TimedAction("kill-worker", at, killCallback));
        }
        else if (!string.IsNullOrWhiteSpace(o.KillCommand))
        {
            string cmd = o.KillCommand;
            actions.Add(new TimedAction("kill-worker", at, ct => RunShellAsync(cmd, ct)));
        }

        var flow = new Flow
        {
            Name = "failover",
            Simulations = Simulations(o, defaultRate: 10),
            NewSession = (i, rng) => new SingleRequestSession(new ChatRequest
            {
                Tenant = TenantOf(o, i),
                Messages = [new ChatMessage("user", SyntheticText.Words((ulong)rng.NextInt64(), prompt))],
                MaxTokens = max,
                IgnoreEos = o.IgnoreEos,
            }),
        };
        return new ScenarioPlan("failover", [flow], actions,
            $"steady load ({prompt}-token prompts, max_tokens {max}); " + (actions.Count > 0 ? $"a worker is killed at {at.TotalSeconds:0.#} s" : "no kill action configured"));
    }

    private static async Task RunShellAsync(string command, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start /bin/sh");
        string err = await p.StandardError.ReadToEndAsync(ct).ConfigureAwait(false);
        await p.WaitForExitAsync(ct).ConfigureAwait(false);
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill command exited {p.ExitCode}: {err.Trim()}");
        }
    }
}

/// <summary>
/// A chat user: each turn re-sends the whole conversation (system prompt, earlier user messages and the real
/// earlier answers) plus a new user message, after an exponential think time. Ends after its turns or at the
/// first error (a user who got an error leaves).
/// </summary>
public sealed class ChatSession : ISession
{
    private readonly List<ChatMessage> _history = [];
    private readonly int _turns;
    private readonly int _userTokens;
    private readonly int _maxTokens;
    private readonly TimeSpan _think;
    private readonly Random _rng;
    private readonly bool _ignoreEos;
    private int _turn;

    /// <summary>Creates a session.</summary>
    public ChatSession(Tenant tenant, string id, int turns, int userTokens, int maxTokens, TimeSpan think, Random rng, bool ignoreEos)
    {
        ArgumentNullException.ThrowIfNull(rng);
        Tenant = tenant;
        Id = id;
        _turns = turns;
        _userTokens = userTokens;
        _maxTokens = maxTokens;
        _think = think;
        _rng = rng;
        _ignoreEos = ignoreEos;
        _history.Add(new ChatMessage("system", "You are a helpful assistant." + SyntheticText.Words(0xC4A7UL, 64)));
    }

    /// <inheritdoc />
    public Tenant Tenant { get; }

    /// <inheritdoc />
    public string? Id { get; }

    /// <inheritdoc />
    public IReadOnlyList<(TimeSpan Offset, ISession Session)> Children => [];

    /// <inheritdoc />
    public SessionStep? Next(RequestResult? previous)
    {
        if (previous is not null)
        {
            if (previous.Outcome != Outcome.Ok)
            {
                return null;
            }

            _history.Add(new ChatMessage("assistant", previous.Content));
        }

        if (_turn >= _turns)
        {
            return null;
        }

        var sb = new StringBuilder($"Turn {_turn + 1}:");
        SyntheticText.AppendWords(sb, (ulong)_rng.NextInt64(), _userTokens);
        _history.Add(new ChatMessage("user", sb.ToString()));
        var think = _turn == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-Math.Log(1 - _rng.NextDouble()) * _think.TotalSeconds);
        _turn++;
        return new SessionStep(think, new ChatRequest
        {
            Tenant = Tenant,
            Messages = [.. _history],
            MaxTokens = _maxTokens,
            SessionId = Id,
            IgnoreEos = _ignoreEos,
        });
    }
}
