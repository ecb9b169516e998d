using System.Text.Json;

namespace Llm.Prompt.OpenAi;

/// <summary>An OpenAI-shaped error: <c>{"error":{"message","type","param","code"}}</c> with its HTTP status.</summary>
public sealed record OpenAiError(int Status, string Message, string Type, string? Param = null, string? Code = null)
{
    /// <summary>400 invalid_request_error.</summary>
    public static OpenAiError Invalid(string message, string? param = null, string? code = null) =>
        new(400, message, "invalid_request_error", param, code);

    /// <summary>404 for an unknown model.</summary>
    public static OpenAiError ModelNotFound(string model) =>
        new(404, $"The model '{model}' does not exist or you do not have access to it.", "invalid_request_error", "model", "model_not_found");

    /// <summary>413 for a body over the limit.</summary>
    public static OpenAiError TooLarge(long limit) =>
        new(413, $"Request body too large: the limit is {limit} bytes.", "invalid_request_error", null, "request_too_large");

    /// <summary>500 for a failure the server did not foresee: the shaped body its safety net answers with.</summary>
    public static OpenAiError Internal { get; } =
        new(500, "The server had an error while processing your request.", "server_error", null, "internal_error");

    /// <summary>Serialises the error body.</summary>
    public byte[] ToJsonBytes()
    {
        using var ms = new MemoryStream(256);
        using (var w = new Utf8JsonWriter(ms))
        {
            WriteTo(w);
        }

        return ms.ToArray();
    }

    /// <summary>Writes <c>{"error":{...}}</c>.</summary>
    public void WriteTo(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteStartObject("error");
        w.WriteString("message", Message);
        w.WriteString("type", Type);
        if (Param is null) { w.WriteNull("param"); } else { w.WriteString("param", Param); }
        if (Code is null) { w.WriteNull("code"); } else { w.WriteString("code", Code); }
        w.WriteEndObject();
        w.WriteEndObject();
    }
}
