using Gateway.Core.Routing;
using Gateway.Core.Scheduling;
using Microsoft.Extensions.Options;

namespace Gateway.Configuration;

/// <summary>Collects every configuration error before failing (as YARP's validators do), instead of stopping at the first.</summary>
internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions o)
    {
        var errors = new List<string>();
        if (!Uri.TryCreate(o.Listen, UriKind.Absolute, out var listen) || listen.Scheme != Uri.UriSchemeHttp)
        {
            errors.Add($"Gateway:Listen must be an absolute http URL, got '{o.Listen}'.");
        }

        if (!string.IsNullOrEmpty(o.ManagementListen))
        {
            if (!Uri.TryCreate(o.ManagementListen, UriKind.Absolute, out var management) || management.Scheme != Uri.UriSchemeHttp)
            {
                errors.Add($"Gateway:ManagementListen must be an absolute http URL, got '{o.ManagementListen}'.");
            }
            else if (listen is not null && management.Port != 0 && management.Port == listen.Port)
            {
                errors.Add($"Gateway:ManagementListen must use another port than Gateway:Listen ({listen.Port}).");
            }
        }

        if (o.Limits.MaxBodyBytes < 1024)
        {
            errors.Add("Gateway:Limits:MaxBodyBytes must be at least 1024.");
        }

        if (o.Limits.MaxSseEventBytes < 4096)
        {
            errors.Add("Gateway:Limits:MaxSseEventBytes must be at least 4096.");
        }

        if (!(o.Limits.MinRequestBodyBytesPerSecond >= 0) || !(o.Limits.MinResponseBytesPerSecond >= 0)
            || double.IsInfinity(o.Limits.MinRequestBodyBytesPerSecond) || double.IsInfinity(o.Limits.MinResponseBytesPerSecond))
        {
            errors.Add("Gateway:Limits:MinRequestBodyBytesPerSecond and MinResponseBytesPerSecond must be finite and >= 0 (0: no minimum).");
        }

        if (o.Limits.ClientStallTimeout < TimeSpan.Zero)
        {
            errors.Add("Gateway:Limits:ClientStallTimeout must be >= 0 (0: never cut off a client that stops reading).");
        }

        if (o.Limits.MinDataRateGracePeriod <= TimeSpan.FromSeconds(1))
        {
            errors.Add("Gateway:Limits:MinDataRateGracePeriod must be more than 1 second (Kestrel checks rates once a second).");
        }

        for (int i = 0; i < o.Auth.Keys.Count; i++)
        {
            var k = o.Auth.Keys[i];
            if (k.Hash.Length != 64 || !IsHex(k.Hash))
            {
                errors.Add($"Gateway:Auth:Keys:{i}:Hash must be 64 hex characters (HMAC-SHA256 digest).");
            }

            if (k.Tenant.Split('/').Length != 3 || k.Tenant.Split('/').Any(string.IsNullOrWhiteSpace))
            {
                errors.Add($"Gateway:Auth:Keys:{i}:Tenant must be 'org/team/key', got '{k.Tenant}'.");
            }

            if (k.Weight <= 0)
            {
                errors.Add($"Gateway:Auth:Keys:{i}:Weight must be positive.");
            }

            ValidateAliases(k.Aliases, $"Gateway:Auth:Keys:{i}:Aliases", errors);
        }

        ValidateAliases(o.Models.Aliases, "Gateway:Models:Aliases", errors);
        foreach (var (splitName, sides) in o.Models.Splits)
        {
            if (sides.Count == 0 || sides.Any(s => string.IsNullOrWhiteSpace(s.Model) || s.Weight <= 0))
            {
                errors.Add($"Gateway:Models:Splits:{splitName} needs at least one side, each with a Model and a positive Weight.");
            }

            if (o.Models.Aliases.ContainsKey(splitName))
            {
                errors.Add($"Gateway:Models: '{splitName}' is both an alias and a split; give it one meaning.");
            }
        }

        if (o.Auth.Keys.Count > 0 && string.IsNullOrEmpty(o.Auth.ServerSecret))
        {
            errors.Add("Gateway:Auth:ServerSecret is required when Gateway:Auth:Keys are configured (digests are HMACs under it).");
        }

        if (o.Auth.DemoKey.Enabled && o.Auth.DemoKey.Tenant.Split('/').Length != 3)
        {
            errors.Add("Gateway:Auth:DemoKey:Tenant must be 'org/team/key'.");
        }

        switch (o.Workers.Mode)
        {
            case WorkerDiscoveryMode.Static:
                if (o.Workers.Urls.Count == 0)
                {
                    errors.Add("Gateway:Workers:Urls must list at least one URL in Static mode.");
                }

                foreach (var u in o.Workers.Urls)
                {
                    if (!Uri.TryCreate(u, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                    {
                        errors.Add($"Gateway:Workers:Urls: '{u}' is not an absolute http(s) URL.");
                    }
                }

                break;
            case WorkerDiscoveryMode.Dns:
                if (string.IsNullOrWhiteSpace(o.Workers.Dns.Host))
                {
                    errors.Add("Gateway:Workers:Dns:Host is required in Dns mode.");
                }

                if (o.Workers.Dns.Port is < 1 or > 65535)
                {
                    errors.Add("Gateway:Workers:Dns:Port must be 1..65535.");
                }

                if (o.Workers.Dns.RefreshInterval <= TimeSpan.Zero)
                {
                    errors.Add("Gateway:Workers:Dns:RefreshInterval must be positive.");
                }

                break;
            case WorkerDiscoveryMode.Kubernetes:
                if (string.IsNullOrWhiteSpace(o.Workers.Kubernetes.Service))
                {
                    errors.Add("Gateway:Workers:Kubernetes:Service is required in Kubernetes mode.");
                }

                if (o.Workers.Kubernetes.Port is < 1 or > 65535)
                {
                    errors.Add("Gateway:Workers:Kubernetes:Port must be 1..65535.");
                }

                if (o.Workers.Kubernetes.ApiServer.Length > 0 && !Uri.TryCreate(o.Workers.Kubernetes.ApiServer, UriKind.Absolute, out _))
                {
                    errors.Add("Gateway:Workers:Kubernetes:ApiServer must be an absolute URL (or empty for in-cluster configuration).");
                }

                if (o.Workers.Kubernetes.ResyncDelay <= TimeSpan.Zero)
                {
                    errors.Add("Gateway:Workers:Kubernetes:ResyncDelay must be positive.");
                }

                break;
            case WorkerDiscoveryMode.Embedded:
                if (o.Workers.Embedded.Count is < 1 or > 64)
                {
                    errors.Add("Gateway:Workers:Embedded:Count must be 1..64.");
                }

                if (o.Workers.Embedded.TimeScale < 0)
                {
                    errors.Add("Gateway:Workers:Embedded:TimeScale must be >= 0.");
                }

                break;
        }

        if (o.Health.Interval <= TimeSpan.Zero || o.Health.Timeout <= TimeSpan.Zero)
        {
            errors.Add("Gateway:Health:Interval and Timeout must be positive.");
        }

        if (o.Resilience.MaxAttempts is < 1 or > 10)
        {
            errors.Add("Gateway:Resilience:MaxAttempts must be 1..10.");
        }

        if (o.Resilience.BreakerFailureRatio is <= 0 or > 1)
        {
            errors.Add("Gateway:Resilience:BreakerFailureRatio must be in (0, 1].");
        }

        if (o.Resilience.BreakerMinimumThroughput < 2)
        {
            errors.Add("Gateway:Resilience:BreakerMinimumThroughput must be at least 2.");
        }

        if (o.Resilience.BreakerBreakDuration < TimeSpan.FromMilliseconds(500) || o.Resilience.BreakerSamplingDuration < TimeSpan.FromMilliseconds(500))
        {
            errors.Add("Gateway:Resilience:BreakerBreakDuration and BreakerSamplingDuration must be at least 0.5 s.");
        }

        if (o.Resilience.FirstByteTimeout <= TimeSpan.Zero || o.Resilience.IdleTimeout <= TimeSpan.Zero)
        {
            errors.Add("Gateway:Resilience:FirstByteTimeout and IdleTimeout must be positive.");
        }

        var sch = o.Scheduling;
        if (!SchedulingPolicies.Names.Contains(sch.Policy))
        {
            errors.Add($"Gateway:Scheduling:Policy '{sch.Policy}' is unknown; known: {string.Join(", ", SchedulingPolicies.Names)}.");
        }

        if (o.State.StandingSlots < 0)
        {
            errors.Add("Gateway:State: StandingSlots must not be negative.");
        }

        if (sch.ReservedSlots < 0 || !(sch.OverShareFactor > 0) || double.IsInfinity(sch.OverShareFactor))
        {
            errors.Add("Gateway:Scheduling: ReservedSlots must not be negative and OverShareFactor must be a finite number above 0.");
        }

        if (sch.UnderSharePriority is < 0 or > 1000)
        {
            errors.Add("Gateway:Scheduling:UnderSharePriority must be 0..1000.");
        }

        if (sch.MaxInFlightPerWorker < 1 || sch.MaxQueued < 1 || sch.DefaultTenantMaxQueued < 0 || sch.MaxReportedWaiting < 0 || sch.MaxPendingPrefillTokens < 0)
        {
            errors.Add("Gateway:Scheduling: MaxInFlightPerWorker and MaxQueued must be at least 1, DefaultTenantMaxQueued, MaxReportedWaiting and MaxPendingPrefillTokens not negative.");
        }

        if (sch.DefaultQueueTimeout <= TimeSpan.Zero || sch.TickInterval <= TimeSpan.Zero || sch.RetryAfter <= TimeSpan.Zero)
        {
            errors.Add("Gateway:Scheduling: DefaultQueueTimeout, TickInterval and RetryAfter must be positive.");
        }

        if (sch.KvHighWatermark is <= 0 or > 1 || sch.BatchAdmitFraction is <= 0 or > 1 || !(sch.InputWeight >= 0) || !(sch.OutputWeight >= 0))
        {
            errors.Add("Gateway:Scheduling: KvHighWatermark and BatchAdmitFraction must be in (0, 1], InputWeight and OutputWeight not negative.");
        }

        if (!RoutingPolicies.IsKnown(o.Routing.Policy))
        {
            errors.Add($"Gateway:Routing:Policy '{o.Routing.Policy}' is unknown; known: {string.Join(", ", RoutingPolicies.Names)}.");
        }

        if (o.Routing.BlockSize is < 1 or > 1024)
        {
            errors.Add("Gateway:Routing:BlockSize must be 1..1024.");
        }

        var emb = o.Workers.Embedded;
        if (emb.Backend is not ("roofline" or "cpu"))
        {
            errors.Add($"Gateway:Workers:Embedded:Backend '{emb.Backend}' must be roofline or cpu.");
        }
        else if (o.Workers.Mode == WorkerDiscoveryMode.Embedded && emb.Backend == "cpu" && !(emb.Model is { Length: > 0 } && File.Exists(emb.Model)))
        {
            errors.Add("Gateway:Workers:Embedded:Model must name an existing GGUF file when Embedded:Backend is cpu (`dotnet run --project src/Worker -- make-model --out FILE.gguf` writes one).");
        }

        if (emb.Threads < 0)
        {
            errors.Add("Gateway:Workers:Embedded:Threads must be >= 0.");
        }

        foreach (var (key, spec) in o.Routing.ModelTokenizers.Select(kv => ("ModelTokenizers:" + kv.Key, kv.Value)).Prepend(("Tokenizer", o.Routing.Tokenizer)))
        {
            if (spec is not ("default" or "bytes" or "o200k_base" or "cl100k_base") && !(spec is { Length: > 0 } && (spec.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || spec.EndsWith(".tiktoken", StringComparison.OrdinalIgnoreCase)) && File.Exists(spec)))
            {
                errors.Add($"Gateway:Routing:{key} '{spec}' must be 'default', 'bytes', 'o200k_base', 'cl100k_base' or an existing .json/.tiktoken vocabulary file.");
            }
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void ValidateAliases(Dictionary<string, string> aliases, string section, List<string> errors)
    {
        foreach (var (from, to) in aliases)
        {
            if (string.IsNullOrWhiteSpace(to) || string.Equals(from, to, StringComparison.Ordinal))
            {
                errors.Add($"{section}:{from} must name another model, got '{to}'.");
            }
        }
    }

    private static bool IsHex(string s)
    {
        foreach (char c in s)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        return true;
    }
}
