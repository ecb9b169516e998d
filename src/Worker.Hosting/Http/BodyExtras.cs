using System.Text.Json;
using Llm.Prompt.OpenAi;

namespace Worker.Http;

/// <summary>
/// Top-level body fields the shared parser does not model but the worker honours: <c>cache_salt</c> (vLLM),
/// <c>dimensions</c> and <c>encoding_format</c> (embeddings), <c>temperature</c> (the cpu backend samples with it). One forward pass of <see cref="Utf8JsonReader"/>
/// over an already validated body.
/// </summary>
internal readonly record struct BodyExtras(string? CacheSalt, int? Dimensions, string? EncodingFormat, double? Temperature = null)
{
    public static bool TryRead(ReadOnlySpan<byte> body, out BodyExtras extras, out OpenAiError? error)
    {
        extras = default;
        error = null;
        string? salt = null;
        int? dims = null;
        string? format = null;
        double? temperature = null;
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = OpenAiRequestParser.MaxDepth });
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return true;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("cache_salt"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        salt = reader.GetString();
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        error = OpenAiError.Invalid("'cache_salt' must be a string.", "cache_salt");
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("dimensions"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt32(out int d) && d >= 1 && d <= 65536)
                    {
                        dims = d;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        error = OpenAiError.Invalid("'dimensions' must be an integer between 1 and 65536.", "dimensions");
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("temperature"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetDouble(out double t) && t >= 0 && t <= 2)
                    {
                        temperature = t;
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        error = OpenAiError.Invalid("'temperature' must be a number between 0 and 2.", "temperature");
                        return false;
                    }
                }
                else if (reader.ValueTextEquals("encoding_format"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        format = reader.GetString();
                        if (format is not ("float" or "base64"))
                        {
                            error = OpenAiError.Invalid("'encoding_format' must be \"float\" or \"base64\".", "encoding_format");
                            return false;
                        }
                    }
                    else if (reader.TokenType != JsonTokenType.Null)
                    {
                        error = OpenAiError.Invalid("'encoding_format' must be a string.", "encoding_format");
                        return false;
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // The shared parser already accepted the body; anything odd here leaves the extras unset.
        }

        extras = new BodyExtras(salt, dims, format, temperature);
        return true;
    }
}
