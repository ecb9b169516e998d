using System.Globalization;
using System.Text;
using System.Text.Json;
using Simulator.Simulation;

namespace Simulator.Reports;

/// <summary>
/// Per-request records of runs (<see cref="RunResult.Requests"/>) in the two forms the simulator writes: JSON lines
/// with the TTFT breakdown for <c>--requests-out</c>, and one CSV per run for <c>compare</c> (next to the raw
/// result.json files, so a cell where a baseline wins can be read request by request). Deterministic: two runs with
/// the same inputs and seed write the same bytes.
/// </summary>
public static class RequestLog
{
    /// <summary>The header row of the CSV form.</summary>
    public const string CsvHeader = "session,turn,tenant,arrival_s,dispatch_s,first_token_s,finish_s,worker,previous_worker,reason,queued_prefill_tokens,prompt_tokens,predicted_cached_tokens,cached_tokens,output_tokens,ttft_ms,rejected";

    private static readonly CultureInfo C = CultureInfo.InvariantCulture;

    /// <summary>
    /// The CSV form of one run's <paramref name="records"/> (one row per request in completion order): where it went,
    /// why, how much of its prompt was cached and how long its first token took.
    /// </summary>
    public static string ToCsv(IReadOnlyList<RequestRecord> records)
    {
        ArgumentNullException.ThrowIfNull(records);
        var sb = new StringBuilder(CsvHeader.Length + records.Count * 96);
        sb.Append(CsvHeader).Append('\n');
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
    public static void WriteCsv(string path, IReadOnlyList<RequestRecord> records) =>
        File.WriteAllText(path, ToCsv(records), new UTF8Encoding(false));

    private static string Num(double v, string format = "F4") => double.IsNaN(v) ? "" : v.ToString(format, C);

    private static string Quote(string s) =>
        s.AsSpan().IndexOfAny(",\"\n\r") < 0 ? s : "\"" + s.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    /// <summary>
    /// Writes <c>&lt;result&gt;.requests.jsonl</c> (<c>--requests-out</c>): one line per request and run, in run order then
    /// completion order, with its outcome and, for served requests, where its time to first token went
    /// (<see cref="TtftBreakdown"/>). Times are seconds of virtual time, numbers rounded as in result.json.
    /// </summary>
    public static void WriteJsonl(string path, IReadOnlyList<RunResult> runs)
    {
        using var file = File.Create(path);
        using var w = new Utf8JsonWriter(file, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        foreach (var run in runs)
        {
            foreach (var r in run.Requests)
            {
                w.WriteStartObject();
                w.WriteString("routing", run.Routing);
                w.WriteString("scheduling", run.Scheduling);
                w.WriteString("retention", run.Retention);
                w.WriteNumber("seed", run.Seed);
                w.WriteString("tenant", r.Tenant);
                w.WriteString("session", r.Session);
                w.WriteNumber("turn", r.Turn);
                w.WriteBoolean("rejected", r.Rejected);
                w.WriteNumber("prompt_tokens", r.PromptTokens);
                w.WriteNumber("cached_tokens", r.CachedTokens);
                w.WriteNumber("output_tokens", r.OutputTokens);
                w.WriteNumber("worker", r.Worker);
                w.WriteNumber("previous_worker", r.PreviousWorker);
                w.WriteString("reason", r.Reason);
                w.WriteNumber("predicted_cached_tokens", r.PredictedCachedTokens);
                if (r.Turn > 0)
                {
                    w.WriteBoolean("after_tool_gap", r.AfterToolGap);
                    w.WriteNumber("reusable_tokens", r.ReusableTokens);
                    w.WriteNumber("cached_on_arrival", r.CachedOnArrival);
                }

                ResultWriter.Num(w, "arrival", r.Arrival);
                ResultWriter.Num(w, "first_token", r.FirstToken);
                ResultWriter.Num(w, "finish", r.Finish);
                if (r.Breakdown is { } b)
                {
                    w.WriteNumber("priority", b.Priority);
                    ResultWriter.Num(w, "dispatched", r.Dispatch);
                    ResultWriter.Num(w, "first_scheduled", b.FirstScheduled);
                    ResultWriter.Num(w, "step_in_progress_s", b.StepInProgressSeconds);
                    w.WriteNumber("prefill_steps", b.PrefillSteps);
                    ResultWriter.Num(w, "prefill_step_s", b.PrefillStepSeconds);
                    w.WriteNumber("prefill_decodes", b.PrefillDecodes);
                    w.WriteNumber("prefill_shared_tokens", b.PrefillSharedTokens);
                    w.WriteNumber("preempted", b.Preempted);
                }

                w.WriteEndObject();
                w.Flush();
                w.Reset(); // the next line is a new document
                file.WriteByte((byte)'\n');
            }
        }
    }
}
