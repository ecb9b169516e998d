using System.Globalization;
using System.Net;
using System.Text;
using Gateway.Core.Routing.KvAware;
using Gateway.Fleet;
using Gateway.Proxy;
using Gateway.Scheduling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Status;

/// <summary>
/// <c>GET /status</c>: a small read-only HTML page for people (auto-refreshes every 2 s with a meta refresh, no script):
/// workers (health, circuit, draining, in-flight, reported queue, KV use), the fair queue (waiting, dispatched),
/// tenants' service share vs entitlement, and recent routing regret (predicted vs actual cached tokens). Shows tenant
/// paths and worker URLs only: never API keys, digests, the server secret, prompts or completions. Every value is
/// HTML-encoded.
/// </summary>
public static class StatusPage
{
    /// <summary>Maps <c>/status</c>.</summary>
    public static IEndpointRouteBuilder MapStatusPage(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.MapGet("/status", ctx =>
        {
            var sp = ctx.RequestServices;
            string html = Render(
                sp.GetRequiredService<WorkerRegistry>(),
                sp.GetRequiredService<ProxyHandler>(),
                sp.GetService<GatewayScheduling>(),
                sp.GetRequiredService<TimeProvider>().GetUtcNow());
            ctx.Response.ContentType = "text/html; charset=utf-8";
            ctx.Response.Headers.CacheControl = "no-store";
            ctx.Response.Headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'";
            return ctx.Response.WriteAsync(html, ctx.RequestAborted);
        });
        return app;
    }

    /// <summary>Renders the page.</summary>
    public static string Render(WorkerRegistry registry, ProxyHandler handler, GatewayScheduling? scheduling, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(handler);
        var inv = CultureInfo.InvariantCulture;
        var b = new StringBuilder(8192);
        b.Append("""
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="2">
<title>LLM gateway status</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px 24px;color:#1d2433;background:#f6f7fb}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 6px;color:#34495e}
.meta{color:#667;font-size:12px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0001;font-size:13px;min-width:640px}
th,td{padding:4px 10px;border-bottom:1px solid #e4e7ef;text-align:left} th{background:#eef1f8;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#157f3b;font-weight:600} .bad{color:#b3261e;font-weight:600} .warn{color:#a15c00;font-weight:600}
.bar{display:inline-block;width:120px;height:10px;background:#e4e7ef;border-radius:5px;vertical-align:middle;margin-right:6px}
.bar i{display:block;height:10px;border-radius:5px;background:#3b6fd8}
.bar i.e{background:#9aa7c7}
</style></head><body>
<h1>LLM gateway status</h1>
""");
        b.Append("<div class=\"meta\">").Append(E(now.ToString("yyyy-MM-dd HH:mm:ss 'UTC'", inv)))
            .Append(" &middot; routing policy <b>").Append(E(handler.Policy.Name)).Append("</b>");
        if (scheduling is not null)
        {
            b.Append(" &middot; scheduler <b>").Append(E(scheduling.Scheduler.Name)).Append("</b> &middot; state <b>")
                .Append(E(scheduling.Store.Name)).Append(scheduling.Store.IsShared ? " (shared)" : "").Append("</b>");
        }

        b.Append(" &middot; refreshes every 2 s</div>\n");

        // Workers.
        var workers = registry.All;
        b.Append("<h2>Workers (").Append(workers.Count.ToString(inv)).Append(")</h2>\n<table><tr><th>worker</th><th>models</th><th>health</th><th>in flight</th><th>waiting / running (reported)</th><th>KV use</th></tr>\n");
        foreach (var w in workers)
        {
            var i = w.Info;
            string health = w.CircuitOpen ? "<span class=\"bad\">circuit open</span>"
                : i.Draining ? "<span class=\"warn\">draining</span>"
                : i.Healthy ? "<span class=\"ok\">healthy</span>" : "<span class=\"bad\">unhealthy</span>";
            b.Append("<tr><td>").Append(E(w.Prefix)).Append("</td><td>").Append(E(string.Join(", ", w.Models)))
                .Append("</td><td>").Append(health)
                .Append("</td><td class=\"n\">").Append(i.InFlight.ToString(inv))
                .Append("</td><td class=\"n\">").Append(i.ReportedWaiting.ToString(inv)).Append(" / ").Append(i.ReportedRunning.ToString(inv))
                .Append("</td><td>");
            Bar(b, i.KvUsage, false);
            b.Append((i.KvUsage * 100).ToString("F1", inv)).Append("% of ").Append(i.KvBlocksTotal.ToString(inv)).Append(" blocks</td></tr>\n");
        }

        b.Append("</table>\n");

        // Fair queue and tenants.
        if (scheduling is not null)
        {
            b.Append("<h2>Fair queue</h2><div class=\"meta\">").Append(scheduling.Enabled ? "enabled" : "disabled")
                .Append(" &middot; waiting <b>").Append(scheduling.Dispatcher.Queued.ToString(inv))
                .Append("</b> &middot; dispatched <b>").Append(scheduling.Dispatcher.InFlight.ToString(inv))
                .Append("</b> &middot; free slots <b>").Append(Math.Max(0, scheduling.FreeCapacity()).ToString(inv)).Append("</b></div>\n");

            var shares = scheduling.ServiceShares();
            double total = 0;
            foreach (var s in shares)
            {
                total += s.Service;
            }

            b.Append("<h2>Tenants: service share vs entitlement</h2>\n<table><tr><th>tenant</th><th>service (cost units)</th><th>share</th><th>entitlement</th></tr>\n");
            if (shares.Count == 0)
            {
                b.Append("<tr><td colspan=\"4\">no completed requests yet</td></tr>\n");
            }

            foreach (var s in shares)
            {
                double share = total > 0 ? s.Service / total : 0;
                b.Append("<tr><td>").Append(E(s.Path)).Append("</td><td class=\"n\">").Append(s.Service.ToString("F0", inv)).Append("</td><td>");
                Bar(b, share, false);
                b.Append((share * 100).ToString("F1", inv)).Append("%</td><td>");
                if (double.IsNaN(s.Entitlement))
                {
                    b.Append("&ndash;");
                }
                else
                {
                    Bar(b, s.Entitlement, true);
                    b.Append((s.Entitlement * 100).ToString("F1", inv)).Append('%');
                }

                b.Append("</td></tr>\n");
            }

            b.Append("</table><div class=\"meta\">Entitlement: weighted share among the tenants served so far (product of weight / sibling weights along the path).</div>\n");
        }

        // Routing regret.
        b.Append("<h2>Recent routing regret</h2>\n");
        if (handler.Policy is KvAwarePolicy kv)
        {
            var r = kv.Regret;
            b.Append("<div class=\"meta\">decisions <b>").Append(r.Decisions.ToString(inv)).Append("</b> &middot; completed <b>").Append(r.Completed.ToString(inv))
                .Append("</b> &middot; actual/predicted cached <b>").Append(double.IsNaN(r.ActualOverPredicted) ? "&ndash;" : r.ActualOverPredicted.ToString("F2", inv))
                .Append("</b> &middot; exact <b>").Append(r.Exact.ToString(inv)).Append("</b> &middot; under-predicted <b>").Append(r.UnderPredicted.ToString(inv))
                .Append("</b> &middot; over-predicted <b>").Append(r.OverPredicted.ToString(inv)).Append("</b></div>\n");
        }

        b.Append("<table><tr><th>time</th><th>tenant</th><th>worker</th><th>prompt</th><th>predicted cached</th><th>best elsewhere</th><th>actual cached</th><th>regret</th></tr>\n");
        var recent = handler.Regret.Snapshot();
        if (recent.Count == 0)
        {
            b.Append("<tr><td colspan=\"8\">no completed requests yet</td></tr>\n");
        }

        int shown = 0;
        foreach (var e in recent)
        {
            if (shown++ == 20)
            {
                break;
            }

            int regret = Math.Max(0, e.BestOtherCachedTokens - e.ActualCachedTokens);
            b.Append("<tr><td>").Append(E(e.At.ToString("HH:mm:ss.fff", inv))).Append("</td><td>").Append(E(e.Tenant))
                .Append("</td><td>").Append(E(e.Worker)).Append("</td><td class=\"n\">").Append(e.PromptTokens.ToString(inv))
                .Append("</td><td class=\"n\">").Append(e.PredictedCachedTokens.ToString(inv))
                .Append("</td><td class=\"n\">").Append(e.BestOtherCachedTokens.ToString(inv))
                .Append("</td><td class=\"n\">").Append(e.ActualCachedTokens.ToString(inv))
                .Append("</td><td class=\"n").Append(regret > 0 ? " warn" : "").Append("\">").Append(regret.ToString(inv)).Append("</td></tr>\n");
        }

        b.Append("</table><div class=\"meta\">regret = max(0, best predicted cached tokens elsewhere &minus; actual cached tokens on the chosen worker).</div>\n</body></html>\n");
        return b.ToString();
    }

    private static void Bar(StringBuilder b, double fraction, bool entitlement)
    {
        double pct = Math.Clamp(double.IsNaN(fraction) ? 0 : fraction, 0, 1) * 100;
        b.Append("<span class=\"bar\"><i").Append(entitlement ? " class=\"e\"" : "").Append(" style=\"width:")
            .Append(pct.ToString("F1", CultureInfo.InvariantCulture)).Append("%\"></i></span>");
    }

    private static string E(string s) => WebUtility.HtmlEncode(s);
}
