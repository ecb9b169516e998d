namespace Gateway.Configuration;

/// <summary>
/// Root of the gateway's configuration (section <c>Gateway</c>). Every key is documented in docs/configuration.md.
/// Bound from appsettings.json, an optional YAML file (<c>--config file.yaml</c> or <c>GATEWAY_CONFIG</c>) and
/// environment variables (<c>Gateway__Workers__Mode=Static</c>), later sources winning.
/// </summary>
public sealed class GatewayOptions
{
    /// <summary>Configuration section name.</summary>
    public const string SectionName = "Gateway";

    /// <summary>Listen URL (scheme http, host an IP or localhost, port 0 = ephemeral).</summary>
    public string Listen { get; set; } = "http://127.0.0.1:8080";

    /// <summary>
    /// Operator listener (same URL rules as <see cref="Listen"/>). When set, <c>/metrics</c> and <c>/status</c> — which show
    /// every tenant's usage — are served only there and the API listener answers them 404, while the OpenAI API is not
    /// served on it; <c>/healthz</c> and <c>/readyz</c> answer on both. Unset (the embedded default): everything on
    /// <see cref="Listen"/>. Production deployments (the Helm chart) set it, so API clients cannot read other tenants'
    /// figures.
    /// </summary>
    public string? ManagementListen { get; set; }

    /// <summary>Kestrel and request limits.</summary>
    public LimitsOptions Limits { get; set; } = new();

    /// <summary>The Responses API's store of responses (TTL, size bound).</summary>
    public Gateway.Responses.ResponsesOptions Responses { get; set; } = new();

    /// <summary>API keys and tenants.</summary>
    public AuthOptions Auth { get; set; } = new();

    /// <summary>Where the worker fleet comes from.</summary>
    public WorkersOptions Workers { get; set; } = new();

    /// <summary>Active and passive health checking.</summary>
    public HealthOptions Health { get; set; } = new();

    /// <summary>Retries, circuit breaker and timeouts towards workers.</summary>
    public ResilienceOptions Resilience { get; set; } = new();

    /// <summary>Routing policy selection.</summary>
    public RoutingOptions Routing { get; set; } = new();

    /// <summary>Graceful shutdown.</summary>
    public ShutdownOptions Shutdown { get; set; } = new();

    /// <summary>Gateway-held fair queue and tenant tree.</summary>
    public SchedulingOptions Scheduling { get; set; } = new();

    /// <summary>Shared state (in memory, or Redis).</summary>
    public StateOptions State { get; set; } = new();

    /// <summary>Model aliases and weighted splits between pools.</summary>
    public ModelsOptions Models { get; set; } = new();
}

/// <summary>
/// Model names clients may send besides the served ones (section <c>Gateway:Models</c>). Each served model is a pool:
/// the workers whose <c>/v1/models</c> lists it, and only they are routing candidates for it.
/// </summary>
public sealed class ModelsOptions
{
    /// <summary>Aliases for every key: requested name → served model, split or another alias.</summary>
    public Dictionary<string, string> Aliases { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Weighted splits: name → sides (served models with integer weights); a session stays on one side.</summary>
    public Dictionary<string, List<SplitSideOptions>> Splits { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>One side of a split.</summary>
public sealed class SplitSideOptions
{
    /// <summary>The served model (pool) this side sends to.</summary>
    public string Model { get; set; } = "";

    /// <summary>Its integer weight (positive).</summary>
    public int Weight { get; set; } = 1;
}

/// <summary>Request limits (Kestrel limits are set from these explicitly).</summary>
public sealed class LimitsOptions
{
    /// <summary>Largest request body accepted, in bytes (413 above).</summary>
    public long MaxBodyBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Total size of request headers, in bytes.</summary>
    public int MaxRequestHeadersTotalSize { get; set; } = 32 * 1024;

    /// <summary>Most request headers.</summary>
    public int MaxRequestHeaderCount { get; set; } = 100;

    /// <summary>Longest request line, in bytes.</summary>
    public int MaxRequestLineSize { get; set; } = 8 * 1024;

    /// <summary>Most concurrent client connections (null = unlimited).</summary>
    public long? MaxConcurrentConnections { get; set; }

    /// <summary>Time allowed to receive the request headers (a client trickling them is cut off after it).</summary>
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Slowest upload accepted, in bytes per second averaged since the body started, after <see cref="MinDataRateGracePeriod"/>:
    /// a client trickling its body is answered 408 and its connection closed (0: no minimum).
    /// </summary>
    public double MinRequestBodyBytesPerSecond { get; set; } = 240;

    /// <summary>
    /// Slowest a client may take a response, in bytes per second while the gateway has bytes waiting for it, after
    /// <see cref="MinDataRateGracePeriod"/>: a client that stops reading a stream is disconnected, its request cancelled and
    /// its worker's blocks freed, instead of holding them (the gateway buffers only what the sockets hold; 0: no minimum).
    /// </summary>
    public double MinResponseBytesPerSecond { get; set; } = 240;

    /// <summary>How long a client may stay under either minimum rate before it is cut off (more than 1 s).</summary>
    public TimeSpan MinDataRateGracePeriod { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Longest one write to a client may wait for the client to read (its socket full): past it the connection is
    /// closed, the request cancelled and its worker's KV blocks freed (<see cref="Hosting.ClientStallGuard"/>; 0: never).
    /// </summary>
    public TimeSpan ClientStallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Idle keep-alive timeout of client connections.</summary>
    public TimeSpan KeepAliveTimeout { get; set; } = TimeSpan.FromSeconds(130);

    /// <summary>Largest non-streaming response body buffered from a worker, in bytes.</summary>
    public int MaxResponseBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Largest single SSE event accepted from a worker, in bytes.</summary>
    public int MaxSseEventBytes { get; set; } = 1024 * 1024;
}

/// <summary>API keys, tenants and the server secret.</summary>
public sealed class AuthOptions
{
    /// <summary>
    /// Server secret for HMAC-SHA256 key digests and per-tenant cache salts. Empty: a random secret is generated at
    /// start (fine for the embedded default, but configured key digests cannot match then).
    /// </summary>
    public string ServerSecret { get; set; } = "";

    /// <summary>Configured keys, each stored as a hex HMAC-SHA256(ServerSecret, key) digest.</summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>The documented demo key (plaintext on purpose; hashed at start-up).</summary>
    public DemoKeyOptions DemoKey { get; set; } = new();
}

/// <summary>One API key.</summary>
public sealed class ApiKeyOptions
{
    /// <summary>Hex HMAC-SHA256(ServerSecret, key) digest (64 hex chars). Compute it with <c>dotnet run --project src/Gateway -- hash-key</c>.</summary>
    public string Hash { get; set; } = "";

    /// <summary>Tenant path <c>org/team/key</c>.</summary>
    public string Tenant { get; set; } = "";

    /// <summary>Fair-share weight of this key (positive).</summary>
    public double Weight { get; set; } = 1;

    /// <summary>Models this key may use; empty = all.</summary>
    public List<string> Models { get; set; } = [];

    /// <summary>This key's own aliases (requested name → served model, split or global alias), looked up before <see cref="ModelsOptions.Aliases"/>.</summary>
    public Dictionary<string, string> Aliases { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Largest max_tokens accepted (0 = no cap).</summary>
    public int MaxTokens { get; set; }

    /// <summary>Largest n accepted (0 = no cap).</summary>
    public int MaxN { get; set; }
}

/// <summary>The demo key of the embedded default.</summary>
public sealed class DemoKeyOptions
{
    /// <summary>Whether the demo key is accepted.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The demo key (documented in the README).</summary>
    public string Key { get; set; } = "sk-demo-local-0000";

    /// <summary>Its tenant path.</summary>
    public string Tenant { get; set; } = "demo/default/demo-key";

    /// <summary>Its weight.</summary>
    public double Weight { get; set; } = 1;
}

/// <summary>How the gateway finds its workers.</summary>
public enum WorkerDiscoveryMode
{
    /// <summary>In-process reference workers (the default: no other process needed).</summary>
    Embedded,

    /// <summary>A fixed list of URLs.</summary>
    Static,

    /// <summary>A DNS name (e.g. a Kubernetes headless Service) re-resolved periodically.</summary>
    Dns,

    /// <summary>The ready endpoints of a Kubernetes Service, watched through its EndpointSlices (needs RBAC: get/list/watch endpointslices).</summary>
    Kubernetes,
}

/// <summary>Worker fleet source.</summary>
public sealed class WorkersOptions
{
    /// <summary>Discovery mode.</summary>
    public WorkerDiscoveryMode Mode { get; set; } = WorkerDiscoveryMode.Embedded;

    /// <summary>Static mode: worker base URLs.</summary>
    public List<string> Urls { get; set; } = [];

    /// <summary>Dns mode settings.</summary>
    public DnsDiscoveryOptions Dns { get; set; } = new();

    /// <summary>Embedded mode settings.</summary>
    public EmbeddedWorkersOptions Embedded { get; set; } = new();

    /// <summary>Kubernetes mode settings.</summary>
    public KubernetesDiscoveryOptions Kubernetes { get; set; } = new();

    /// <summary>How long the fleet's model list (/v1/models) is cached per worker.</summary>
    public TimeSpan ModelsRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Connect timeout towards workers.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Most connections per worker (HTTP/1.1).</summary>
    public int MaxConnectionsPerWorker { get; set; } = 1024;
}

/// <summary>DNS discovery of a headless Service.</summary>
public sealed class DnsDiscoveryOptions
{
    /// <summary>Name to resolve (A/AAAA records), e.g. <c>workers.llm.svc.cluster.local</c>.</summary>
    public string Host { get; set; } = "";

    /// <summary>Worker port.</summary>
    public int Port { get; set; } = 8000;

    /// <summary>Scheme (http).</summary>
    public string Scheme { get; set; } = "http";

    /// <summary>Re-resolution interval.</summary>
    public TimeSpan RefreshInterval { get; set; } = TimeSpan.FromSeconds(10);
}

/// <summary>Kubernetes discovery: the EndpointSlices of a Service, listed then watched.</summary>
public sealed class KubernetesDiscoveryOptions
{
    /// <summary>The Service whose EndpointSlices list the workers (label <c>kubernetes.io/service-name</c>).</summary>
    public string Service { get; set; } = "";

    /// <summary>Its namespace; empty = the gateway pod's own (from the service account's namespace file).</summary>
    public string Namespace { get; set; } = "";

    /// <summary>The EndpointSlice port to use, by name; empty = the slice's first port, else <see cref="Port"/>.</summary>
    public string PortName { get; set; } = "";

    /// <summary>Worker port when the slice names none.</summary>
    public int Port { get; set; } = 8000;

    /// <summary>Scheme (http).</summary>
    public string Scheme { get; set; } = "http";

    /// <summary>API server URL; empty = in-cluster configuration (service account token and CA).</summary>
    public string ApiServer { get; set; } = "";

    /// <summary>First delay before listing again after a failed list or a broken watch (doubles up to 30 s).</summary>
    public TimeSpan ResyncDelay { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>In-process reference workers.</summary>
public sealed class EmbeddedWorkersOptions
{
    /// <summary>Number of workers.</summary>
    public int Count { get; set; } = 4;

    /// <summary>Roofline profile.</summary>
    public string Profile { get; set; } = "h100-llama3-8b";

    /// <summary>Wall seconds per modelled second (0.05 = 20x faster than the modelled GPU).</summary>
    public double TimeScale { get; set; } = 0.05;

    /// <summary>KV blocks per worker (0 = the profile's default; cpu: 64k tokens, at most 1 GiB).</summary>
    public int KvBlocks { get; set; }

    /// <summary><c>roofline</c> (default) or <c>cpu</c>: real Llama forward passes over <see cref="Model"/> (docs/worker.md).</summary>
    public string Backend { get; set; } = "roofline";

    /// <summary>GGUF model of the cpu backend (<c>Worker make-model</c> writes one).</summary>
    public string? Model { get; set; }

    /// <summary>Kernel threads per cpu-backend worker (0 = processor count / worker count, at least 1).</summary>
    public int Threads { get; set; }

    /// <summary>Workers take max_tokens as a cap on a drawn length instead of the exact length (worker <c>--max-tokens-as-cap true</c>).</summary>
    public bool MaxTokensAsCap { get; set; }

    /// <summary>Tool results after which the workers answer an agent's <c>tool_choice: auto</c> turn in text (worker <c>--max-tool-results</c>).</summary>
    public int MaxToolResults { get; set; } = 8;
}

/// <summary>Active (polling) and passive (request outcome) health.</summary>
public sealed class HealthOptions
{
    /// <summary>Poll interval of <c>/worker/state</c> (or <c>/healthz</c>).</summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Timeout of one probe.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Consecutive failed probes before a worker is unhealthy.</summary>
    public int UnhealthyThreshold { get; set; } = 2;

    /// <summary>Consecutive failed requests (connect failure, 5xx) before a worker is unhealthy until its next good probe.</summary>
    public int PassiveFailureThreshold { get; set; } = 3;
}

/// <summary>Retries, circuit breaker and timeouts towards workers (Polly).</summary>
public sealed class ResilienceOptions
{
    /// <summary>Total attempts per request (first try + retries), each on a different worker when possible.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Base delay of the exponential backoff (with jitter).</summary>
    public TimeSpan RetryBaseDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Largest backoff delay.</summary>
    public TimeSpan RetryMaxDelay { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Time allowed until the first byte of the answer (response headers; for streams the first SSE event).</summary>
    public TimeSpan FirstByteTimeout { get; set; } = TimeSpan.FromSeconds(300);

    /// <summary>Longest silence between two SSE chunks before the stream is ended with an error event.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Circuit breaker: failure ratio over the sampling window that opens the circuit.</summary>
    public double BreakerFailureRatio { get; set; } = 0.5;

    /// <summary>Circuit breaker: fewest calls in the window before it may open.</summary>
    public int BreakerMinimumThroughput { get; set; } = 4;

    /// <summary>Circuit breaker: sampling window.</summary>
    public TimeSpan BreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Circuit breaker: how long an open circuit keeps the worker ineligible.</summary>
    public TimeSpan BreakerBreakDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Retry-After (seconds) sent with 503 when no worker is healthy.</summary>
    public int RetryAfterSeconds { get; set; } = 1;
}

/// <summary>Routing policy.</summary>
public sealed class RoutingOptions
{
    /// <summary>Policy name (see <c>RoutingPolicies.Names</c>).</summary>
    public string Policy { get; set; } = "kv-aware";

    /// <summary>Seed of the policy's random tie-breaks.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Block size the gateway cuts prompts with (must match the workers').</summary>
    public int BlockSize { get; set; } = 16;

    /// <summary>
    /// Tokenizer the gateway hashes prompts with (must match the workers'): <c>default</c>, <c>bytes</c> (cpu-backend
    /// workers' byte-level vocabulary), <c>o200k_base</c> / <c>cl100k_base</c> (tiktoken encodings through
    /// Microsoft.ML.Tokenizers) or a <c>tokenizer.json</c>/<c>.tiktoken</c> path.
    /// </summary>
    public string Tokenizer { get; set; } = "default";

    /// <summary>Per-model tokenizer overriding <see cref="Tokenizer"/> (model id → name or path).</summary>
    public Dictionary<string, string> ModelTokenizers { get; set; } = new(StringComparer.Ordinal);

    /// <summary>
    /// The tokenizer used for models without an override: <see cref="Tokenizer"/>, except that an embedded fleet of
    /// cpu-backend workers (byte-level models) hashes with <c>bytes</c> while <see cref="Tokenizer"/> is left at default.
    /// </summary>
    public string EffectiveTokenizer(WorkersOptions workers) =>
        Tokenizer == "default" && workers.Mode == WorkerDiscoveryMode.Embedded && workers.Embedded.Backend == "cpu" ? "bytes" : Tokenizer;

}

/// <summary>Graceful shutdown.</summary>
public sealed class ShutdownOptions
{
    /// <summary>How long in-flight requests may run after shutdown starts.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(30);
}
