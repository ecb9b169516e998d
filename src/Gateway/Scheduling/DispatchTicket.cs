using Gateway.Core.Routing;
using Gateway.Core.Scheduling;

namespace Gateway.Scheduling;

/// <summary>What <see cref="FairDispatcher.EnterAsync"/> answers: a ticket to proceed, or a refusal.</summary>
public sealed class DispatchResult
{
    private DispatchResult(DispatchTicket? ticket, AdmissionResult refusal)
    {
        Ticket = ticket;
        Refusal = refusal;
    }

    /// <summary>Non-null when the request may be sent to a worker now.</summary>
    public DispatchTicket? Ticket { get; }

    /// <summary>Why it was refused (429 + Retry-After: <see cref="AdmissionResult.ToError"/>, <see cref="AdmissionResult.RetryAfterSeconds"/>).</summary>
    public AdmissionResult Refusal { get; }

    internal static DispatchResult Go(DispatchTicket t) => new(t, default);

    internal static DispatchResult Refused(AdmissionResult r) => new(null, r);
}

/// <summary>A dispatched request: report streamed tokens, then complete (or cancel) exactly once.</summary>
public sealed class DispatchTicket : IDisposable
{
    private readonly FairDispatcher _owner;
    private int _done;

    internal DispatchTicket(FairDispatcher owner, QueuedRequest request, TimeSpan queueWait, bool urgent)
    {
        _owner = owner;
        Request = request;
        QueueWait = queueWait;
        Urgent = urgent;
    }

    /// <summary>Released while its tenant was not over its share (hfair): send the worker the under-share priority hint.</summary>
    public bool Urgent { get; }

    /// <summary>
    /// The worker the request was released for (the one whose freed slot the locality pick filled), or null: the first
    /// attempt goes there while it is eligible, retries route again (<see cref="DispatchRouting"/>).
    /// </summary>
    public WorkerInfo? PickedFor => Request.PickedFor;

    /// <summary>The request as the scheduler saw it.</summary>
    public QueuedRequest Request { get; }

    /// <summary>Time spent in the gateway queue (record it as <c>gateway.queue.wait</c>).</summary>
    public TimeSpan QueueWait { get; }

    /// <summary>Reports <paramref name="tokens"/> newly streamed output tokens.</summary>
    public void OnOutputTokens(int tokens)
    {
        if (Volatile.Read(ref _done) == 0)
        {
            _owner.OnTokens(Request, tokens);
        }
    }

    /// <summary>
    /// Settles with actual usage (completion or client cancel) and frees the slot. <paramref name="worker"/>: where it
    /// ran; the request released into the freed slot is then chosen for that worker (<see cref="LocalityPick"/>).
    /// </summary>
    public void Complete(int cachedPromptTokens, int outputTokens, WorkerInfo? worker = null)
    {
        if (Interlocked.Exchange(ref _done, 1) == 0)
        {
            _owner.OnComplete(Request, cachedPromptTokens, outputTokens, worker);
        }
    }

    /// <summary>Completes with what was reported so far if the host forgot to (error paths).</summary>
    public void Dispose() => Complete(Request.ExpectedCachedTokens, Request.ChargedOutputTokens);
}
