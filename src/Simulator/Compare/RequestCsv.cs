using System.Globalization;
using System.Text;
using Simulator.Simulation;

namespace Simulator.Compare;

/// <summary>
/// Per-request records of one run as CSV (one row per request in completion order): where it went, why, how much of
/// its prompt was cached and how long its first token took. <c>compare</c> writes one file per run next to the raw
/// result.json files, so a cell where a baseline wins can be read request by request.
/// </summary>
public static class RequestCsv
{
    /// <summary>The header row.</summary>
    public const string Header = "session,turn,tenant,arrival_s,dispatch_s,first_token_s,finish_s,worker,previous_worker,reason,queued_prefill_tokens,prompt_tokens,predicted_cached_tokens,cached_tokens,output_tokens,ttft_ms,rejected";

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>The file name of a run's records: suite, scenario, load, routing (knobs kept, unsafe characters replaced) and seed.</summary>
    public static string FileName(string suite, string scenario, double load, RunResult run)
    {
        var routing = new StringBuilder(run.Routing.Length);
        foreach (char c in run.Routing)
        {
            routing.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        }

        return string.Create(C, $"{suite}-{scenario}-{SuiteScenario.LoadLabel(load)}-{routing}-seed{run.Seed}.requests.csv");
    }

    /// <summary>The CSV text of <paramref name="records"/>.</summary>
    public static string ToCsv(IReadOnlyList<RequestRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var sb = new StringBuilder(Header.Length + records.Count * 96);
        sb.Append(Header).Append('\n');
        foreach (var r in records)
        {
            double ttft = (r.FirstToken - r.Arrival) * 1000.0;
            sb.Append(C, $"{Quote(r.Session)},{r.Turn},{Quote(r.Tenant)},{r.Arrival:F4},{Num(r.Dispatch)},{Num(r.FirstToken)},{r.Finish:F4},");
            sb.Append(C, $"{r.Worker},{r.PreviousWorker},{Quote(r.Reason)},{r.QueuedPrefillAtDispatch},{r.PromptTokens},{r.PredictedCachedTokens},");
            sb.Append(C, $"{r.CachedTokens},{r.OutputTokens},{Num(ttft, "F1")},{(r.Rejected ? 1 : 0)}\n");
        }

        return sb.ToString();
    }

    /// <summary>Writes <paramref name="records"/> to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<RequestRecord> records) =>
        File.WriteAllText(path, ToCsv(records), new UTF8Encoding(false));

    private static string Num(double v, string format = "F4") => double.IsNaN(v) ? "" : v.ToString(format, C);

    private static string Quote(string s) =>
        s.AsSpan().IndexOfAny(",\"\n\r") < 0 ? s : "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
