namespace Simulator.Engine;

/// <summary>
/// Future events ordered by (time, insertion sequence): two events at the same instant fire in the order they
/// were scheduled, so a run is reproducible bit for bit (PriorityQueue alone does not order ties).
/// </summary>
public sealed class EventQueue<T>
{
    private readonly PriorityQueue<T, (double Time, long Seq)> _queue = new();
    private long _seq;

    /// <summary>Pending events.</summary>
    public int Count => _queue.Count;

    /// <summary>Schedules <paramref name="item"/> at <paramref name="time"/>.</summary>
    public void Schedule(double time, T item)
    {
        if (double.IsNaN(time))
        {
            throw new ArgumentOutOfRangeException(nameof(time));
        }

        _queue.Enqueue(item, (time, _seq++));
    }

    /// <summary>Takes the earliest event.</summary>
    public bool TryDequeue(out T item, out double time)
    {
        if (_queue.TryDequeue(out item!, out var p))
        {
            time = p.Time;
            return true;
        }

        time = 0;
        return false;
    }
}
