using System.Text;
using System.Text.Json;

namespace Llm.Prompt.OpenAi;

/// <summary>
/// Renders a chat request into the prompt text the model sees, the way a chat template does, so the gateway and
/// the worker derive identical tokens (and block hashes) from the same body. Tool definitions come first (as
/// Llama-3 / Qwen templates put them in the system turn), then each message as
/// <c>&lt;|role|&gt;\ncontent\n</c>, assistant tool calls as JSON, and the open assistant turn last.
/// A conversation that grows by appending messages renders to a string that extends the previous one, which is
/// what makes multi-turn prefix caching work.
/// </summary>
public static class PromptRenderer
{
    // One builder per thread, reused: rendering is on every request's path (gateway and worker), and a fresh 1k-char
    // builder per request was a measurable share of the gateway's allocations. Builders grown past this are dropped.
    private const int MaxCachedChars = 64 * 1024;

    [ThreadStatic]
    private static StringBuilder? t_builder;

    /// <summary>Renders <paramref name="messages"/> (and optional <paramref name="tools"/>).</summary>
    public static string RenderChat(JsonElement messages, JsonElement tools)
    {
        var sb = t_builder ?? new StringBuilder(1024);
        t_builder = null; // not re-entrant: a nested call (none today) would get its own
        try
        {
            Render(sb, messages, tools);
            return sb.ToString();
        }
        finally
        {
            if (sb.Capacity <= MaxCachedChars)
            {
                sb.Clear();
                t_builder = sb;
            }
        }
    }

    private static void Render(StringBuilder sb, JsonElement messages, JsonElement tools)
    {
        if (tools.ValueKind == JsonValueKind.Array && tools.GetArrayLength() > 0)
        {
            sb.Append("<|tools|>\n").Append(tools.GetRawText()).Append('\n');
        }

        foreach (var m in messages.EnumerateArray())
        {
            string role = m.GetProperty("role").GetString()!;
            sb.Append("<|").Append(role).Append("|>\n");
            if (m.TryGetProperty("content", out var content))
            {
                AppendContent(sb, content);
            }

            if (m.TryGetProperty("tool_calls", out var calls) && calls.ValueKind == JsonValueKind.Array)
            {
                foreach (var call in calls.EnumerateArray())
                {
                    sb.Append("<|tool_call|>").Append(call.GetRawText());
                }
            }

            sb.Append('\n');
        }

        sb.Append("<|assistant|>\n");
    }

    private static void AppendContent(StringBuilder sb, JsonElement content)
    {
        switch (content.ValueKind)
        {
            case JsonValueKind.String:
                sb.Append(content.GetString());
                break;
            case JsonValueKind.Array:
                foreach (var part in content.EnumerateArray())
                {
                    if (part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String)
                    {
                        sb.Append(text.GetString());
                    }
                    else if (part.ValueKind == JsonValueKind.String)
                    {
                        sb.Append(part.GetString());
                    }
                    else
                    {
                        sb.Append(part.GetRawText());
                    }
                }

                break;
        }
    }
}
