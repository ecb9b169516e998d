namespace Worker.Engine;

/// <summary>The TTL scan both KV tiers run over their pins: which pins are due, and when the next one falls due.</summary>
internal static class PinExpiry
{
    /// <summary>
    /// The pins whose expiry is at or before <paramref name="now"/> (null when none), in enumeration order;
    /// <paramref name="next"/> is the earliest expiry of the others (<see cref="DateTimeOffset.MaxValue"/> when none is left).
    /// </summary>
    public static List<T>? Due<T>(IEnumerable<T> pins, Func<T, DateTimeOffset> expiresAt, DateTimeOffset now, out DateTimeOffset next)
    {
        List<T>? due = null;
        next = DateTimeOffset.MaxValue;
        foreach (var pin in pins)
        {
            var at = expiresAt(pin);
            if (at <= now)
            {
                (due ??= []).Add(pin);
            }
            else if (at < next)
            {
                next = at;
            }
        }

        return due;
    }
}
