using LoadGen.Client;

namespace LoadGen.Scenarios;

/// <summary>Everything a scenario needs to build its flows (filled from the command line).</summary>
public sealed class ScenarioOptions
{
    /// <summary>Tenants (label + optional API key); at least one.</summary>
    public IReadOnlyList<Tenant> Tenants { get; init; } = [new Tenant("tenant-1", null)];

    /// <summary>Phase length (the run's duration).</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Open-loop arrival rate in sessions per second (per tenant for noisy-neighbour); null = the scenario's default.</summary>
    public double? Rate { get; init; }

    /// <summary>Closed-loop users; when set, replaces the open-loop rate.</summary>
    public int? Concurrency { get; init; }

    /// <summary>Replay these arrival offsets (from a trace) instead of Poisson arrivals; null = Poisson.</summary>
    public IReadOnlyList<TimeSpan>? Arrivals { get; init; }

    /// <summary>Ramp the rate up from zero over this long first (open loop only).</summary>
    public TimeSpan Ramp { get; init; }

    /// <summary>Prompt (user part) size in tokens; null = the scenario's default.</summary>
    public int? PromptTokens { get; init; }

    /// <summary>max_tokens; null = the scenario's default.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>Send <c>ignore_eos</c> so servers generate exactly max_tokens.</summary>
    public bool IgnoreEos { get; init; }

    /// <summary>shared-prefix: number of distinct system prompts.</summary>
    public int Prefixes { get; init; } = 16;

    /// <summary>shared-prefix: system prompt size in tokens.</summary>
    public int PrefixTokens { get; init; } = 1024;

    /// <summary>shared-prefix: Zipf exponent of the system-prompt popularity.</summary>
    public double ZipfS { get; init; } = 1.1;

    /// <summary>shared-prefix: distinct users (the <c>user</c> field).</summary>
    public int Users { get; init; } = 200;

    /// <summary>multi-turn: turns per chat session.</summary>
    public int Turns { get; init; } = 4;

    /// <summary>multi-turn: mean think time between turns (exponential).</summary>
    public TimeSpan Think { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>agent: folder of WEKA traces.</summary>
    public string TraceDir { get; init; } = "/work/shared/traces/weka_agentic_coding_v8/traces";

    /// <summary>agent: how many trace files to use (the first N by name).</summary>
    public int TraceSessions { get; init; } = 32;

    /// <summary>agent: scaling.</summary>
    public AgentScaling Agent { get; init; } = new();

    /// <summary>noisy-neighbour: the first tenant's rate is this many times the others'; 0 = it sends nothing while the
    /// others replay exactly the same arrivals and prompts (the "alone" baseline).</summary>
    public double NoisyFactor { get; init; } = 10;

    /// <summary>failover: when to kill (default 40 % of the duration).</summary>
    public TimeSpan? KillAt { get; init; }

    /// <summary>failover: shell command that kills a worker (run with /bin/sh -c).</summary>
    public string? KillCommand { get; init; }
}
