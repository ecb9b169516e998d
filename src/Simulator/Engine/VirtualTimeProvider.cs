namespace Simulator.Engine;

/// <summary>
/// Virtual clock for the discrete-event loop: <see cref="Now"/> (seconds since the simulation start) is set by the
/// loop; engines and policies read it through the ordinary <see cref="TimeProvider"/> API, so pin TTLs, routing
/// index lifetimes and eviction intervals all run in simulated time. Timestamps are 100 ns ticks.
/// </summary>
public sealed class VirtualTimeProvider : TimeProvider
{
    private static readonly DateTimeOffset Epoch = new(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private double _now;

    /// <summary>Seconds since the start of the simulation.</summary>
    public double Now
    {
        get => _now;
        set
        {
            if (value < _now)
            {
                throw new InvalidOperationException($"virtual time cannot go back ({value} < {_now})");
            }

            _now = value;
        }
    }

    /// <inheritdoc />
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <inheritdoc />
    public override long GetTimestamp() => (long)Math.Round(_now * TimeSpan.TicksPerSecond);

    /// <inheritdoc />
    public override DateTimeOffset GetUtcNow() => Epoch.AddTicks(GetTimestamp());

    /// <inheritdoc />
    public override TimeZoneInfo LocalTimeZone => TimeZoneInfo.Utc;
}
