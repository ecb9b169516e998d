using LoadGen.Client;
using LoadGen.Metrics;

namespace LoadGen.Load;

/// <summary>Unmeasured requests before a run: first requests pay for connection set-up and JIT on every hop.</summary>
public static class Warmup
{
    /// <summary>Sends the first request of <paramref name="count"/> sessions of <paramref name="flow"/>, four at a time.</summary>
    public static async Task<(int Ok, int Failed)> RunAsync(SseChatClient client, Flow flow, int count, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(client);
        ArgumentNullException.ThrowIfNull(flow);
        int ok = 0, failed = 0, next = 0;
        async Task Worker()
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next) - 1;
                if (i >= count || ct.IsCancellationRequested)
                {
                    return;
                }

                var session = flow.NewSession(1_000_000_000L + i, new Random(i));
                if (session.Next(null) is not { } step)
                {
                    continue;
                }

                var r = await client.SendAsync(step.Request, new RequestResult { Tenant = session.Tenant.Name }, ct).ConfigureAwait(false);
                Interlocked.Increment(ref r.Outcome == Outcome.Ok ? ref ok : ref failed);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Worker())).ConfigureAwait(false);
        return (ok, failed);
    }
}
