using System.Buffers;
using System.Text.Json;

namespace Gateway.Proxy;

/// <summary>
/// The only edits the gateway makes to a body: ask the worker for usage on streams
/// (<c>stream_options.include_usage=true</c>), drop a client-supplied <c>cache_salt</c> (the gateway sets the
/// tenant's salt by header; a client must never choose another tenant's) and, for an alias or a split, name the served
/// model the worker knows. Everything else is forwarded as it came: top-level values are copied byte for byte with a
/// <see cref="Utf8JsonReader"/> into a <see cref="Utf8JsonWriter"/>, never through a DOM.
/// </summary>
internal static class BodyRewriter
{
    public static bool MentionsCacheSalt(ReadOnlySpan<byte> body) => body.IndexOf("\"cache_salt\""u8) >= 0;

    /// <summary>The edited body. <paramref name="body"/> must be a JSON object (the request parser has checked it).</summary>
    public static byte[] Rewrite(ReadOnlyMemory<byte> body, bool forceIncludeUsage, bool dropCacheSalt, string? model = null)
    {
        var json = body.Span;
        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = Llm.Prompt.OpenAi.OpenAiRequestParser.MaxDepth });
        var output = new ArrayBufferWriter<byte>(body.Length + 48);
        using (var w = new Utf8JsonWriter(output, new JsonWriterOptions { SkipValidation = false }))
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw new JsonException("the request body is not a JSON object");
            }

            bool wroteModel = false, wroteStreamOptions = false;
            w.WriteStartObject();
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isModel = reader.ValueTextEquals("model"u8);
                bool isSalt = reader.ValueTextEquals("cache_salt"u8);
                bool isStreamOptions = reader.ValueTextEquals("stream_options"u8);
                string? escapedName = reader.ValueIsEscaped ? reader.GetString() : null;
                var name = reader.ValueSpan;
                reader.Read();
                if (isModel && model is not null)
                {
                    w.WriteString("model"u8, model);
                    wroteModel = true;
                    reader.Skip();
                }
                else if (isSalt && dropCacheSalt)
                {
                    reader.Skip();
                }
                else if (isStreamOptions && forceIncludeUsage)
                {
                    WriteStreamOptions(w, json, ref reader);
                    wroteStreamOptions = true;
                }
                else
                {
                    if (escapedName is not null)
                    {
                        w.WritePropertyName(escapedName);
                    }
                    else
                    {
                        w.WritePropertyName(name);
                    }

                    CopyValue(w, json, ref reader);
                }
            }

            if (model is not null && !wroteModel)
            {
                w.WriteString("model"u8, model);
            }

            if (forceIncludeUsage && !wroteStreamOptions)
            {
                w.WriteStartObject("stream_options"u8);
                w.WriteBoolean("include_usage"u8, true);
                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        return output.WrittenSpan.ToArray();
    }

    /// <summary><c>stream_options</c> with <c>include_usage: true</c>: the client's other options kept, a non-object replaced.</summary>
    private static void WriteStreamOptions(Utf8JsonWriter w, ReadOnlySpan<byte> json, ref Utf8JsonReader reader)
    {
        w.WriteStartObject("stream_options"u8);
        if (reader.TokenType == JsonTokenType.StartObject)
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                bool isIncludeUsage = reader.ValueTextEquals("include_usage"u8);
                string? escapedName = reader.ValueIsEscaped ? reader.GetString() : null;
                var name = reader.ValueSpan;
                reader.Read();
                if (isIncludeUsage)
                {
                    reader.Skip();
                    continue;
                }

                if (escapedName is not null)
                {
                    w.WritePropertyName(escapedName);
                }
                else
                {
                    w.WritePropertyName(name);
                }

                CopyValue(w, json, ref reader);
            }
        }
        else
        {
            reader.Skip();
        }

        w.WriteBoolean("include_usage"u8, true);
        w.WriteEndObject();
    }

    /// <summary>Copies the value the reader is on (a scalar, or a whole object or array) as its original bytes.</summary>
    private static void CopyValue(Utf8JsonWriter w, ReadOnlySpan<byte> json, ref Utf8JsonReader reader)
    {
        int start = (int)reader.TokenStartIndex;
        if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray)
        {
            reader.Skip();
        }

        int end = (int)reader.BytesConsumed;
        w.WriteRawValue(json[start..end], skipInputValidation: true);
    }
}
