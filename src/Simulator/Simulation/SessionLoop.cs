using Simulator.Engine;
using Simulator.Workload;

namespace Simulator.Simulation;

/// <summary>
/// The closed loop of sessions: a session's turn k arrives its think time after turn k−1 completed and after every
/// sub-agent session that blocks turn k finished; a sub-agent starts when its parent turn completes (or with its parent
/// when it has none). Arrivals are scheduled as <see cref="SimEventKind.Arrival"/> events.
/// </summary>
internal sealed class SessionLoop
{
    private readonly SessionState[] _sessions;
    private readonly EventQueue<SimEvent> _events;

    public SessionLoop(SimWorkload workload, Func<string, int> tenantIndex, EventQueue<SimEvent> events)
    {
        _events = events;
        _sessions = new SessionState[workload.Sessions.Count];
        foreach (var s in workload.Sessions)
        {
            _sessions[s.Index] = new SessionState(s, tenantIndex(s.Tenant));
        }
    }

    /// <summary>Every session of the workload, by index.</summary>
    public IReadOnlyList<SessionState> Sessions => _sessions;

    /// <summary>Schedules the root sessions' starts.</summary>
    public void ScheduleRoots(IEnumerable<SimSession> roots)
    {
        foreach (var root in roots)
        {
            _events.Schedule(root.Start, SimEvent.StartSession(_sessions[root.Index]));
        }
    }

    /// <summary>Starts <paramref name="s"/> at <paramref name="t"/> with the sub-agents it opens at once.</summary>
    public void Start(SessionState s, double t)
    {
        s.Started = true;
        s.Base = t;
        foreach (var child in s.Session.Children)
        {
            if (child.ParentTurn < 0)
            {
                Start(_sessions[child.Index], t);
            }
        }

        TryIssue(s);
    }

    /// <summary>Turn <paramref name="k"/> of <paramref name="s"/> completed (served or rejected) at <paramref name="t"/>.</summary>
    public void TurnDone(SessionState s, int k, double t)
    {
        s.Completed = k + 1;
        s.Base = t;
        foreach (var child in s.Session.Children)
        {
            if (child.ParentTurn == k)
            {
                Start(_sessions[child.Index], t);
            }
        }

        if (s.Completed < s.Session.Turns.Count)
        {
            TryIssue(s);
        }
        else
        {
            CheckSessionDone(s, t);
        }
    }

    private void TryIssue(SessionState s)
    {
        int k = s.Issued;
        if (!s.Started || k >= s.Session.Turns.Count || s.Completed != k || s.Blocking[k] > 0)
        {
            return;
        }

        s.Issued++;
        double at = Math.Max(s.Base, s.BlockingDoneAt[k]) + s.Session.Turns[k].Think;
        _events.Schedule(at, SimEvent.Arrival(s, k));
    }

    private void CheckSessionDone(SessionState s, double t)
    {
        if (s.Done || s.Completed < s.Session.Turns.Count || s.OpenChildren > 0)
        {
            return;
        }

        s.Done = true;
        if (s.Session.Parent is { } parent)
        {
            var p = _sessions[parent.Index];
            int idx = s.Session.ParentTurn + 1;
            p.Blocking[idx]--;
            p.BlockingDoneAt[idx] = Math.Max(p.BlockingDoneAt[idx], t);
            p.OpenChildren--;
            if (idx < p.Session.Turns.Count)
            {
                TryIssue(p);
            }
            else
            {
                CheckSessionDone(p, t);
            }
        }
    }
}
