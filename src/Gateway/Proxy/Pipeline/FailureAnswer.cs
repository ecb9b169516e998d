using Gateway.Configuration;
using Llm.Prompt.OpenAi;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// What the client reads when no attempt delivered an answer and nothing reached it yet: 503 <c>no_healthy_worker</c>
/// (no eligible worker, every circuit open, draining), 429 <c>workers_overloaded</c>, 504 <c>upstream_timeout</c>, or 502
/// <c>upstream_error</c>, in OpenAI shape, with <c>Retry-After</c> where waiting helps (the worker's own when it sent one).
/// </summary>
public sealed partial class FailureAnswer
{
    private readonly int _retryAfterSeconds;
    private readonly ILogger<FailureAnswer> _logger;

    /// <summary>Creates the mapper (singleton).</summary>
    public FailureAnswer(IOptions<GatewayOptions> options, ILogger<FailureAnswer> logger)
    {
        _retryAfterSeconds = options.Value.Resilience.RetryAfterSeconds;
        _logger = logger;
    }

    /// <summary>Writes the error for <paramref name="outcome"/>, unless the answer is already delivered, started or unwanted.</summary>
    public Task WriteAsync(HttpContext context, AttemptOutcome outcome, string model)
    {
        if (context.Response.HasStarted || outcome.Kind is AttemptKind.Delivered or AttemptKind.ClientAborted or AttemptKind.DiedMidStream)
        {
            return Task.CompletedTask;
        }

        if (outcome.Kind is AttemptKind.NoWorker or AttemptKind.CircuitOpen)
        {
            Log.NoWorker(_logger, model);
        }

        var (error, retryAfter) = For(outcome, model);
        return OpenAiErrors.WriteAsync(context, error, retryAfter);
    }

    /// <summary>The error and <c>Retry-After</c> seconds (null: none) for a failed outcome.</summary>
    internal (OpenAiError Error, int? RetryAfterSeconds) For(AttemptOutcome outcome, string model)
    {
        var error = outcome.Kind switch
        {
            AttemptKind.NoWorker or AttemptKind.CircuitOpen or AttemptKind.Draining => OpenAiErrors.NoHealthyWorker(model),
            AttemptKind.Throttled => new OpenAiError(429, "All workers tried are overloaded. Retry later.", "rate_limit_error", null, "workers_overloaded"),
            AttemptKind.FirstByteTimeout => new OpenAiError(504, "The worker did not answer within the first-byte timeout.", "server_error", null, "upstream_timeout"),
            _ => new OpenAiError(502, $"The worker failed before answering ({Describe(outcome)}).", "server_error", null, "upstream_error"),
        };
        int? retryAfter = outcome.Kind is AttemptKind.NoWorker or AttemptKind.CircuitOpen or AttemptKind.Throttled or AttemptKind.Draining
            ? (outcome.RetryAfter is { } d ? Math.Max(1, (int)Math.Ceiling(d.TotalSeconds)) : _retryAfterSeconds)
            : null;
        return (error, retryAfter);
    }

    private static string Describe(AttemptOutcome o) => o.Kind switch
    {
        AttemptKind.ServerError => $"status {o.UpstreamStatus}",
        AttemptKind.ConnectFailed => "connection failed",
        AttemptKind.DiedBeforeFirstByte => "connection lost",
        _ => o.Kind.ToString(),
    };

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.NoWorker, Level = LogLevel.Warning, Message = "No eligible worker for model {Model}")]
        public static partial void NoWorker(ILogger logger, string model);
    }
}
