namespace Gateway.Core.Scheduling;

/// <summary>
/// <c>vtc</c>: Virtual Token Counter, faithful to Sheng et al., "Fairness in Serving Large Language Models"
/// (OSDI'24), weighted variant. One counter per client (the request's full tenant path; sessions are ignored):
/// <list type="bullet">
/// <item>on arrival of a client that is not backlogged: <c>c[u] = max(c[u], min c[v] over backlogged v)</c>,
/// or <c>max(c[u], c[last client that left the queue])</c> when nobody is backlogged (counter lift);</item>
/// <item>admit the backlogged client with the least counter (FIFO within a client; resumed agent turns,
/// <see cref="QueuedRequest.ResumeCredit"/>, first), charging
/// <c>w_in x input tokens / weight</c> (the whole prompt: VTC does not discount cache hits);</item>
/// <item>each generated token charges <c>w_out / weight</c> (<see cref="ChargeOutput"/>); <see cref="Complete"/>
/// charges the output tokens not yet reported.</item>
/// </list>
/// Knobs: weights by client path (default 1), w_in and w_out (defaults 1 and 2). No priority classes, no tree.
/// </summary>
public sealed class VtcScheduler : IRequestScheduler, IServiceAccounting
{
    /// <summary>Policy name.</summary>
    public const string PolicyName = "vtc";

    private static readonly IComparer<Client> ClientOrder = Comparer<Client>.Create(static (a, b) =>
    {
        var c = a.Counter.CompareTo(b.Counter);
        return c != 0 ? c : a.Seq.CompareTo(b.Seq);
    });

    private static readonly IComparer<QueuedRequest> RequestOrder = QueuedRequest.ResumedThenFifo;

    private readonly Dictionary<string, Client> _clients = new(StringComparer.Ordinal);
    private readonly SortedSet<Client> _backlogged = new(ClientOrder);
    private readonly CostModel _cost;
    private Func<string, double> _weightOf;
    private double _lastLeftCounter;
    private long _seq;
    private int _count;

    /// <summary>Creates the scheduler.</summary>
    public VtcScheduler(Func<string, double>? weightOf = null, CostModel? cost = null)
    {
        _weightOf = weightOf ?? (static _ => 1.0);
        _cost = cost ?? CostModel.Default;
    }

    /// <inheritdoc />
    public string Name => PolicyName;

    /// <inheritdoc />
    public int Count => _count;

    /// <summary>Counter of a client (normalised service), 0 if unknown.</summary>
    public double CounterOf(string tenantPath) => _clients.TryGetValue(tenantPath, out var c) ? c.Counter : 0;

    /// <inheritdoc />
    public double ServiceOf(string tenantPath) => _clients.TryGetValue(tenantPath, out var c) ? c.Service : 0;

    /// <inheritdoc />
    public void UpdateWeights(Func<string, double> weightOf)
    {
        ArgumentNullException.ThrowIfNull(weightOf);
        _weightOf = weightOf;
        foreach (var c in _clients.Values)
        {
            c.Weight = Sanitize(weightOf(c.Path));
        }
    }

    /// <inheritdoc />
    public void Enqueue(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var client = GetClient(request.TenantPath);
        if (client.Queue.Count == 0)
        {
            client.Counter = _backlogged.Count == 0
                ? Math.Max(client.Counter, _lastLeftCounter)
                : Math.Max(client.Counter, _backlogged.Min!.Counter);
            client.Queue.Add(request);
            _backlogged.Add(client);
        }
        else
        {
            client.Queue.Add(request);
        }

        request.SchedulerState = client;
        _count++;
    }

    /// <inheritdoc />
    public QueuedRequest? Dequeue()
    {
        if (_backlogged.Count == 0)
        {
            return null;
        }

        var client = _backlogged.Min!;
        _backlogged.Remove(client);
        var request = client.Queue.Min!;
        client.Queue.Remove(request);
        _count--;
        var cost = _cost.InputWeight * Math.Max(0, request.PromptTokens);
        client.Counter += cost / client.Weight;
        client.Service += cost;
        request.ChargedCost = cost;
        request.ChargedOutputTokens = 0;
        request.SchedulerState = new InFlight(client);
        if (client.Queue.Count > 0)
        {
            _backlogged.Add(client);
        }
        else
        {
            _lastLeftCounter = client.Counter;
        }

        return request;
    }

    /// <inheritdoc />
    public bool Remove(QueuedRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.SchedulerState is not Client client)
        {
            return false;
        }

        _backlogged.Remove(client);
        if (!client.Queue.Remove(request))
        {
            _backlogged.Add(client);
            return false;
        }

        _count--;
        request.SchedulerState = null;
        if (client.Queue.Count > 0)
        {
            _backlogged.Add(client);
        }

        return true;
    }

    /// <inheritdoc />
    public void Charge(string tenantPath, double cost)
    {
        ArgumentNullException.ThrowIfNull(tenantPath);
        if (cost == 0 || double.IsNaN(cost) || double.IsInfinity(cost))
        {
            return;
        }

        Add(GetClient(tenantPath), cost);
    }

    /// <inheritdoc />
    public void ChargeOutput(QueuedRequest request, int tokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (tokens <= 0 || request.SchedulerState is not InFlight f)
        {
            return;
        }

        Add(f.Client, request.RecordOutput(_cost, tokens));
    }

    /// <inheritdoc />
    public void Complete(QueuedRequest request, int cachedPromptTokens, int outputTokens)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (request.SchedulerState is not InFlight f)
        {
            return;
        }

        var missing = outputTokens - request.ChargedOutputTokens;
        request.SchedulerState = null;
        if (missing != 0)
        {
            Add(f.Client, request.RecordOutput(_cost, missing));
        }
    }

    private void Add(Client client, double cost)
    {
        var backlogged = client.Queue.Count > 0;
        if (backlogged)
        {
            _backlogged.Remove(client);
        }

        client.Counter += cost / client.Weight;
        client.Service += cost;
        if (backlogged)
        {
            _backlogged.Add(client);
        }
    }

    private Client GetClient(string path)
    {
        if (!_clients.TryGetValue(path, out var c))
        {
            c = new Client(path, Sanitize(_weightOf(path)), ++_seq);
            _clients.Add(path, c);
        }

        return c;
    }

    private static double Sanitize(double w) => w > 0 && !double.IsInfinity(w) && !double.IsNaN(w) ? w : 1.0;

    private sealed class InFlight(Client client)
    {
        public Client Client { get; } = client;
    }

    private sealed class Client(string path, double weight, long seq)
    {
        public string Path { get; } = path;
        public double Weight { get; set; } = weight;
        public long Seq { get; } = seq;
        public double Counter { get; set; }
        public double Service { get; set; }
        public SortedSet<QueuedRequest> Queue { get; } = new(RequestOrder);
    }
}
