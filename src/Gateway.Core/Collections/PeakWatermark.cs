namespace Gateway.Core.Collections;

/// <summary>
/// When a collection should give its spare capacity back after a burst: once its count falls below a quarter of the
/// peak seen since the last trim (peaks under <see cref="MinTrimPeak"/> are not worth a trim).
/// </summary>
internal struct PeakWatermark
{
    /// <summary>Smallest peak after which a trim is considered.</summary>
    public const int MinTrimPeak = 256;

    private int _peak;

    /// <summary>Records the collection's count after it grew.</summary>
    public void Observe(int count) => _peak = Math.Max(_peak, count);

    /// <summary>True when the collection should trim now; then the peak starts again from <paramref name="count"/>.</summary>
    public bool TrimNow(int count)
    {
        if (_peak < MinTrimPeak || count >= _peak / 4)
        {
            return false;
        }

        _peak = count;
        return true;
    }
}
