using Simulator.Workload;

namespace Simulator.Simulation;

/// <summary>
/// A session's progress in the closed loop (<see cref="SessionLoop"/>): turns issued and completed, the sub-agents
/// still blocking a turn, and what its last turn left behind (prompt hashes, worker, stop reason) for the next one.
/// </summary>
internal sealed class SessionState
{
    public SessionState(SimSession session, int tenant)
    {
        Session = session;
        Tenant = tenant;
        int n = session.Turns.Count;
        Blocking = new int[n + 1];
        BlockingDoneAt = new double[n + 1];
        foreach (var c in session.Children)
        {
            Blocking[c.ParentTurn + 1]++;
        }

        OpenChildren = session.Children.Count;
    }

    public SimSession Session { get; }

    /// <summary>Index of the session's tenant in the run's tenant list.</summary>
    public int Tenant { get; }

    /// <summary>Per turn: sub-agent sessions that must finish before it is issued.</summary>
    public int[] Blocking { get; }

    /// <summary>Per turn: when its last blocking sub-agent finished.</summary>
    public double[] BlockingDoneAt { get; }

    public int OpenChildren { get; set; }

    public bool Started { get; set; }

    public bool Done { get; set; }

    public int Issued { get; set; }

    public int Completed { get; set; }

    /// <summary>When the session last made progress (start or a turn's end): think time counts from here.</summary>
    public double Base { get; set; }

    public ulong[]? PreviousHashes { get; set; }

    public int LastWorker { get; set; } = -1;

    public string? LastStop { get; set; }
}
