using System.Text.Json;
using Simulator.Simulation;

namespace Simulator.Reports;

/// <summary>
/// Writes <c>&lt;result&gt;.requests.jsonl</c> (<c>--requests-out</c>): one line per request and run, in run order then
/// completion order, with its outcome and, for served requests, where its time to first token went
/// (<see cref="TtftBreakdown"/>). Times are seconds of virtual time, numbers rounded as in result.json (deterministic).
/// </summary>
public static class RequestLogWriter
{
    /// <summary>Writes every run's request records to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<RunResult> runs)
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
