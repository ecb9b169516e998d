using Gateway.Configuration;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The retry around forwarding attempts (<c>Gateway:Resilience</c>): up to <c>MaxAttempts</c> attempts with jittered
/// exponential backoff, only for outcomes that left nothing at the client (<see cref="AttemptOutcome.Retryable"/>);
/// each retry is counted by reason.
/// </summary>
public sealed class AttemptRetry
{
    /// <summary>Builds the pipeline (singleton).</summary>
    public AttemptRetry(IOptions<GatewayOptions> options, TimeProvider time, GatewayMetrics metrics)
    {
        var r = options.Value.Resilience;
        Pipeline = new ResiliencePipelineBuilder<AttemptOutcome> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<AttemptOutcome>
            {
                MaxRetryAttempts = r.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = r.RetryBaseDelay,
                MaxDelay = r.RetryMaxDelay,
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result is { Retryable: true }),
                OnRetry = args =>
                {
                    metrics.RecordRetry(Reason(args.Outcome.Result?.Kind));
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>The Polly pipeline an attempt runs in.</summary>
    public ResiliencePipeline<AttemptOutcome> Pipeline { get; }

    /// <summary>The retry metric's reason label for an attempt that ended as <paramref name="kind"/>.</summary>
    internal static string Reason(AttemptKind? kind) => kind switch
    {
        AttemptKind.ConnectFailed => "connect",
        AttemptKind.ServerError => "5xx",
        AttemptKind.Throttled => "429",
        AttemptKind.CircuitOpen => "circuit_open",
        AttemptKind.Draining => "draining",
        _ => "died_before_first_byte",
    };
}
