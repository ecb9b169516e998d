using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace Llm.Prompt.OpenAi;

/// <summary>
/// Finds JSON strings that are valid grammar but not text. <see cref="JsonDocument"/> accepts a string holding a lone
/// UTF-16 surrogate escape (<c>"\ud800"</c>) or bytes that are not UTF-8 (<c>0xFF</c>, overlong or surrogate
/// encodings), and every later read of it (<c>GetString</c>, <c>ValueEquals</c>, <c>JsonNode</c> re-serialising)
/// throws <see cref="InvalidOperationException"/>. The shared parser runs this check once on the whole body, so every
/// consumer after it (renderer, body rewriter, the worker's handlers) only ever sees valid text.
/// </summary>
public static class JsonTextCheck
{
    /// <summary>
    /// The first invalid string (property names included) of a body, as a 400 naming the
    /// top-level field it sits in; null when every string is text. A body that is all UTF-8 and holds no surrogate
    /// escape (<c>\uD800</c>–<c>\uDFFF</c>) is accepted by two vectorised scans without reading its tokens; a body
    /// that is not JSON at all may come back as a grammar error here.
    /// </summary>
    public static OpenAiError? Check(ReadOnlySpan<byte> json, int maxDepth)
    {
        if (Utf8.IsValid(json) && !HasSurrogateEscape(json))
        {
            return null;
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = maxDepth });
        string? field = null;
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName))
                {
                    continue;
                }

                var problem = Inspect(ref reader);
                bool topLevelName = reader.TokenType == JsonTokenType.PropertyName && reader.CurrentDepth == 1;
                if (problem is not null)
                {
                    string where = topLevelName ? "a top-level property name" : field is null ? "a string" : $"a string in '{field}'";
                    return OpenAiError.Invalid($"Request body is not valid JSON text: {where} holds {problem}.", topLevelName ? null : field, "invalid_json");
                }

                if (topLevelName)
                {
                    field = reader.GetString();
                }
            }
        }
        catch (JsonException ex)
        {
            // Grammar or depth: the same answer JsonDocument would give.
            return OpenAiError.Invalid("Request body is not valid JSON: " + ex.Message, null, "invalid_json");
        }

        return null;
    }

    /// <summary>True when <paramref name="json"/> holds <c>\u</c> followed by D8–DF (a surrogate escape, paired or not).</summary>
    internal static bool HasSurrogateEscape(ReadOnlySpan<byte> json)
    {
        int i;
        while ((i = json.IndexOf("\\u"u8)) >= 0)
        {
            json = json[(i + 2)..];
            if (json.Length >= 2 && (json[0] | 0x20) == 'd' && json[1] is (>= (byte)'8' and <= (byte)'9') or (>= (byte)'a' and <= (byte)'f') or (>= (byte)'A' and <= (byte)'F'))
            {
                return true;
            }
        }

        return false;
    }

    private static string? Inspect(ref Utf8JsonReader reader)
    {
        var raw = reader.ValueSpan; // the reader runs over one contiguous span: never a sequence
        if (!Utf8.IsValid(raw))
        {
            return "bytes that are not UTF-8";
        }

        if (!reader.ValueIsEscaped)
        {
            return null;
        }

        // Unescaped UTF-16 is never longer than the escaped UTF-8 bytes.
        char[] scratch = ArrayPool<char>.Shared.Rent(Math.Max(raw.Length, 1));
        try
        {
            reader.CopyString(scratch);
            return null;
        }
        catch (InvalidOperationException)
        {
            return "a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair)";
        }
        finally
        {
            ArrayPool<char>.Shared.Return(scratch);
        }
    }
}
