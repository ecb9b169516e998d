namespace Simulator.Simulation;

/// <summary>
/// Per-tenant fairness accounting of a run: service delivered (cost units, per tenant and per
/// <see cref="BucketSeconds"/> bucket), the time two or more tenants had requests queued (contention), and, for the
/// service delivered while contended, each tenant's share against the share its weights entitle it to among the
/// tenants queued at that moment (<see cref="Stats.EntitledShares"/>). Jain's index over share / entitlement is the
/// run's fairness figure.
/// </summary>
internal sealed class TenantLedger
{
    /// <summary>Width of a service-over-time bucket.</summary>
    public const double BucketSeconds = 1.0;

    private readonly string[] _tenants;
    private readonly Func<string, double> _weightOf;
    private readonly List<double>[] _ttft;
    private readonly int[] _completed;
    private readonly double[] _service, _contendedService, _entitled;
    private readonly int[] _queued;
    private readonly List<double[]> _buckets = [];
    private int _tenantsQueued;
    private double _lastContentionChange;
    private double _contendedSeconds;
    private double _contendedTotal;
    private double[]? _entitledCache;

    public TenantLedger(string[] tenants, Func<string, double> weightOf)
    {
        _tenants = tenants;
        _weightOf = weightOf;
        _ttft = new List<double>[tenants.Length];
        for (int i = 0; i < tenants.Length; i++)
        {
            _ttft[i] = [];
        }

        _completed = new int[tenants.Length];
        _service = new double[tenants.Length];
        _contendedService = new double[tenants.Length];
        _entitled = new double[tenants.Length];
        _queued = new int[tenants.Length];
    }

    /// <summary>Two or more tenants have requests queued.</summary>
    public bool Contended => _tenantsQueued >= 2;

    /// <summary>Seconds during which two or more tenants had requests queued.</summary>
    public double ContendedSeconds => _contendedSeconds;

    /// <summary>Service per bucket of <see cref="BucketSeconds"/> and tenant.</summary>
    public double[][] ServiceOverTime => _buckets.ToArray();

    /// <summary>A request of <paramref name="tenant"/> entered the gateway queue at <paramref name="t"/>.</summary>
    public void Enqueued(int tenant, double t)
    {
        UpdateContention(t);
        if (_queued[tenant]++ == 0)
        {
            _tenantsQueued++;
            _entitledCache = null;
        }
    }

    /// <summary>A request of <paramref name="tenant"/> left the gateway queue at <paramref name="t"/>.</summary>
    public void Dequeued(int tenant, double t)
    {
        UpdateContention(t);
        if (--_queued[tenant] == 0)
        {
            _tenantsQueued--;
            _entitledCache = null;
        }
    }

    /// <summary>Closes the contention interval open at the end of the run.</summary>
    public void Close(double t) => UpdateContention(t);

    /// <summary>The service bucket of time <paramref name="t"/> (buckets up to it are created).</summary>
    public int Bucket(double t)
    {
        int bucket = (int)(t / BucketSeconds);
        while (_buckets.Count <= bucket)
        {
            _buckets.Add(new double[_tenants.Length]);
        }

        return bucket;
    }

    /// <summary>
    /// Records <paramref name="service"/> delivered to <paramref name="tenant"/> in <paramref name="bucket"/>; returns
    /// the part that counts as contended service (the step was <paramref name="contended"/> and the tenant has work queued).
    /// </summary>
    public double Serve(int tenant, int bucket, double service, bool contended)
    {
        _service[tenant] += service;
        _buckets[bucket][tenant] += service;
        if (contended && _queued[tenant] > 0)
        {
            _contendedService[tenant] += service;
            return service;
        }

        return 0;
    }

    /// <summary>Splits <paramref name="delivered"/> contended service of one step among the queued tenants' entitlements.</summary>
    public void Entitle(double delivered)
    {
        var entitled = Entitled();
        for (int i = 0; i < entitled.Length; i++)
        {
            _entitled[i] += delivered * entitled[i];
        }

        _contendedTotal += delivered;
    }

    /// <summary>A request of <paramref name="tenant"/> completed with <paramref name="ttftMs"/>.</summary>
    public void Completed(int tenant, double ttftMs)
    {
        _completed[tenant]++;
        _ttft[tenant].Add(ttftMs);
    }

    /// <summary>Per-tenant results and Jain's index over each tenant's contended share / entitled share.</summary>
    public (List<TenantResult> Tenants, double Jain) Results()
    {
        var tenants = new List<TenantResult>(_tenants.Length);
        var ratios = new List<double>();
        for (int i = 0; i < _tenants.Length; i++)
        {
            double share = _contendedTotal > 0 ? _contendedService[i] / _contendedTotal : 0;
            double entitled = _contendedTotal > 0 ? _entitled[i] / _contendedTotal : 0;
            if (entitled > 0)
            {
                ratios.Add(share / entitled);
            }

            tenants.Add(new TenantResult
            {
                Tenant = _tenants[i],
                Weight = _weightOf(_tenants[i]),
                ServiceTokens = _service[i],
                Share = share,
                EntitledShare = entitled,
                TtftMs = Percentiles.Of(_ttft[i]),
                Completed = _completed[i],
            });
        }

        return (tenants, Stats.Jain(ratios));
    }

    private void UpdateContention(double t)
    {
        if (_tenantsQueued >= 2)
        {
            _contendedSeconds += t - _lastContentionChange;
        }

        _lastContentionChange = t;
    }

    private double[] Entitled()
    {
        if (_entitledCache is not null)
        {
            return _entitledCache;
        }

        var active = new List<string>();
        var index = new List<int>();
        for (int i = 0; i < _tenants.Length; i++)
        {
            if (_queued[i] > 0)
            {
                active.Add(_tenants[i]);
                index.Add(i);
            }
        }

        var shares = Stats.EntitledShares(active, _weightOf);
        var result = new double[_tenants.Length];
        for (int j = 0; j < index.Count; j++)
        {
            result[index[j]] = shares[j];
        }

        _entitledCache = result;
        return result;
    }
}
