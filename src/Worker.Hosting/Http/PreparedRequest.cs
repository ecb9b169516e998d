using Llm.Prompt.OpenAi;
using Worker.Contract;
using Worker.Engine;
using Worker.Generation;
using Worker.Hosting;

namespace Worker.Http;

/// <summary>
/// A validated request ready for the engine, with everything needed to render its response. <see cref="Generated"/> is
/// set when the backend computes real tokens (the cpu backend); then <see cref="Plan"/> is empty.
/// </summary>
internal sealed record PreparedRequest(OpenAiRequest Request, EngineRequest Engine, OutputPlan Plan, long Created, long? RetentionTtlMs, GeneratedText? Generated = null)
{
    public string FinishReason => Generated?.FinishReason ?? Plan.FinishReason;

    public int CompletionTokens => Generated?.Tokens ?? Plan.OutputTokens;

    public string Content() => Generated?.Text ?? Plan.Content();
}
