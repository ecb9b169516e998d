using Gateway.Auth;
using Gateway.Core.Tenancy;
using Gateway.Scheduling;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Gateway.Configuration;

/// <summary>
/// Applies a changed configuration without a restart and without dropping work: when the configuration reloads (the
/// YAML file given with <c>--config</c>/<c>GATEWAY_CONFIG</c> changed, e.g. a ConfigMap update), the new
/// <c>Gateway</c> section is bound and validated; if valid, the API keys and the tenant tree (weights, priority
/// classes, quotas, model allow-lists) are swapped in. Queued and in-flight requests keep their place and charges.
/// Everything else (listen address, workers, routing policy, limits, telemetry) is read once at start and needs a
/// restart (a rolling one is lossless, docs/operations.md). An invalid reload changes nothing and is logged.
/// </summary>
public sealed partial class ConfigReloader(IConfiguration configuration, ApiKeyAuthenticator auth, GatewayScheduling scheduling, ILogger<ConfigReloader> logger)
    : IHostedService, IDisposable
{
    private IDisposable? _subscription;
    private long _applied, _rejected;

    /// <summary>Reloads applied.</summary>
    public long Applied => Interlocked.Read(ref _applied);

    /// <summary>Reloads refused (invalid options or tenant tree).</summary>
    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Why the last reload was refused (null after a good one).</summary>
    public string? LastError { get; private set; }

    /// <inheritdoc />
    public Task StartAsync(CancellationToken cancellationToken)
    {
        _subscription = ChangeToken.OnChange(configuration.GetReloadToken, Apply);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public void Dispose() => Interlocked.Exchange(ref _subscription, null)?.Dispose();

    /// <summary>Binds, validates and applies the current configuration (what a change triggers).</summary>
    public void Apply()
    {
        GatewayOptions options;
        try
        {
            options = configuration.GetSection(GatewayOptions.SectionName).Get<GatewayOptions>() ?? new GatewayOptions();
        }
        catch (InvalidOperationException e)
        {
            Refuse(e.Message);
            return;
        }

        var validation = new GatewayOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            Refuse(string.Join("; ", validation.Failures));
            return;
        }

        try
        {
            scheduling.ReloadTenants(options); // validates the tree first; changes nothing when it throws
        }
        catch (TenantConfigException e)
        {
            Refuse(string.Join("; ", e.Errors));
            return;
        }

        auth.Reload(options.Auth);
        LastError = null;
        Interlocked.Increment(ref _applied);
        Log.Applied(logger, auth.KeyCount, scheduling.Tree.Nodes.Count);
    }

    private void Refuse(string why)
    {
        LastError = why;
        Interlocked.Increment(ref _rejected);
        Log.Refused(logger, why);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.ConfigReloaded, Level = LogLevel.Information, Message = "Configuration reloaded: {Keys} API keys, {Nodes} tenant nodes")]
        public static partial void Applied(ILogger logger, int keys, int nodes);

        [LoggerMessage(EventId = EventIds.ConfigReloadRefused, Level = LogLevel.Error, Message = "Configuration reload refused, previous configuration kept: {Reason}")]
        public static partial void Refused(ILogger logger, string reason);
    }
}
