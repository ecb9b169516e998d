namespace Gateway.Core.Scheduling;

/// <summary>First come, first served (baseline): order of arrival, no notion of tenants.</summary>
public sealed class FcfsScheduler : IRequestScheduler
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "fcfs";

    private readonly SortedSet<QueuedRequest> _queue = new(Comparer<QueuedRequest>.Create(static (a, b) => a.Id.CompareTo(b.Id)));

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public int Count => _queue.Count;

    /// <inheritdoc />
    public void Enqueue(QueuedRequest request) => _queue.Add(request);

    /// <inheritdoc />
    public QueuedRequest? Dequeue()
    {
        if (_queue.Count == 0)
        {
            return null;
        }

        var first = _queue.Min!;
        _queue.Remove(first);
        return first;
    }

    /// <inheritdoc />
    public bool Remove(QueuedRequest request) => _queue.Remove(request);

    /// <inheritdoc />
    public void Charge(string tenantPath, double cost)
    {
    }
}
