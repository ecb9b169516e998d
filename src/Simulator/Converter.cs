using System.Globalization;
using Simulator.Traces;

namespace Simulator;

/// <summary>Helpers for the convert subcommand.</summary>
public static class Converter
{
    /// <summary>
    /// Gives tenant-less requests a synthetic tenant "tenant-i" by root-session order (i = n mod N), sub-agents
    /// inheriting their root's tenant; N = 0 leaves them as they are.
    /// </summary>
    public static List<TraceRequest> AssignTenants(List<TraceRequest> requests, int n)
    {
        if (n <= 0)
        {
            return requests;
        }

        var bySession = new Dictionary<string, string>(StringComparer.Ordinal);
        int next = 0;
        foreach (var r in requests)
        {
            if (r.Tenant is not null)
            {
                continue;
            }

            // A sub-agent takes its parent's tenant (parents precede children in reader output).
            string? root = r.Parent ?? r.Session;
            if (root is null)
            {
                r.Tenant = "tenant-" + (next++ % n).ToString(CultureInfo.InvariantCulture);
                continue;
            }

            if (!bySession.TryGetValue(root, out var tenant))
            {
                tenant = "tenant-" + (next++ % n).ToString(CultureInfo.InvariantCulture);
                bySession[root] = tenant;
            }

            r.Tenant = tenant;
            if (r.Session is not null)
            {
                bySession.TryAdd(r.Session, tenant);
            }
        }

        return requests;
    }
}
