using FsCheck;
using FsCheck.Fluent;
using static Gateway.Tests.Fuzz.JsonGenerators;

namespace Gateway.Tests.Fuzz;

/// <summary>The error shape an endpoint must answer with.</summary>
internal enum ErrorShape
{
    OpenAi,
    Anthropic,
}

/// <summary>One fuzzed HTTP request.</summary>
internal sealed record FuzzInput(
    string Endpoint, string Method, string Path, IReadOnlyList<(string Name, string Value)> Headers, byte[]? Body,
    bool Chunked, bool HeaderFlood, ErrorShape Shape)
{
    /// <summary>
    /// True when Kestrel itself may refuse the request before any application code runs (its own empty 400/431): a
    /// header flood, or a header value with bytes outside visible ASCII (RFC 9110 obs-text, which Kestrel rejects).
    /// </summary>
    public bool KestrelMayRefuse => HeaderFlood || Headers.Any(h => h.Value.Any(c => c is < ' ' or > '~'));
}

/// <summary>An endpoint the fuzzer aims at: its path, the error shape it owes and the body generator that fits it.</summary>
internal sealed record FuzzEndpoint(string Name, string Path, ErrorShape Shape, Gen<FuzzJson> Body);

/// <summary>
/// FsCheck generators for whole requests: a body that is mostly well-formed for its endpoint with each field
/// sometimes of the wrong type or at an edge, sometimes any JSON at all, sometimes damaged bytes; headers with odd
/// keys, content types and session ids, and sometimes a flood (hundreds of headers, or one huge one).
/// </summary>
internal static class RequestGenerators
{
    public const string Model = "llama3-8b";

    public static FuzzEndpoint Chat { get; } = new("chat", "/v1/chat/completions", ErrorShape.OpenAi, Body(
        Required("model", ModelName()), Required("messages", ChatMessages()), Optional("max_tokens", Count(64)),
        Optional("max_completion_tokens", Count(64)), Optional("n", Count(2)), Optional("stream", Boolean()),
        Optional("stream_options", StreamOptions()), Optional("stop", Stop()), Optional("seed", Number()),
        Optional("temperature", Number()), Optional("user", Str().Select(s => (FuzzJson)s)), Optional("prompt_cache_key", Str().Select(s => (FuzzJson)s)),
        Optional("tools", Tools()), Optional("tool_choice", ToolChoice()), Optional("cache_salt", Str().Select(s => (FuzzJson)s)),
        Optional("metadata", Any())));

    public static FuzzEndpoint Completions { get; } = new("completions", "/v1/completions", ErrorShape.OpenAi, Body(
        Required("model", ModelName()), Required("prompt", Prompt()), Optional("max_tokens", Count(64)), Optional("n", Count(2)),
        Optional("stream", Boolean()), Optional("stream_options", StreamOptions()), Optional("stop", Stop()),
        Optional("seed", Number()), Optional("echo", Boolean()), Optional("user", Str().Select(s => (FuzzJson)s))));

    public static FuzzEndpoint Embeddings { get; } = new("embeddings", "/v1/embeddings", ErrorShape.OpenAi, Body(
        Required("model", ModelName()), Required("input", EmbeddingInput()), Optional("dimensions", Count(64)),
        Optional("encoding_format", Gen.Frequency((3, Gen.Elements("float", "base64").Select(s => (FuzzJson)FuzzJson.Str.Of(s))), (1, Any()))),
        Optional("user", Str().Select(s => (FuzzJson)s))));

    /// <summary>Anthropic's Messages API (gateway only): errors in Anthropic's shape.</summary>
    public static FuzzEndpoint Messages { get; } = new("messages", "/v1/messages", ErrorShape.Anthropic, Body(
        Required("model", ModelName()), Required("max_tokens", Count(64)), Required("messages", AnthropicMessages()),
        Optional("system", Gen.Frequency((3, Str().Select(s => (FuzzJson)s)), (1, TextBlocks()), (1, Any()))),
        Optional("stream", Boolean()), Optional("stop_sequences", Stop()), Optional("temperature", Number()),
        Optional("tools", Gen.Frequency(
            (3, from name in Word() from schema in Gen.Frequency((3, Gen.Constant<FuzzJson>(FuzzJson.Object(("type", FuzzJson.Str.Of("object"))))), (1, Any()))
                select (FuzzJson)new FuzzJson.Arr([FuzzJson.Object(("name", name), ("description", FuzzJson.Str.Of("d")), ("input_schema", schema))])),
            (1, Any()))),
        Optional("tool_choice", Gen.Frequency((3, Gen.Elements("auto", "any", "none").Select(t => (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of(t))))), (1, Any()))),
        Optional("metadata", Any())));

    /// <summary>OpenAI's Responses API (gateway only).</summary>
    public static FuzzEndpoint Responses { get; } = new("responses", "/v1/responses", ErrorShape.OpenAi, Body(
        Required("model", ModelName()), Required("input", Gen.Frequency(
            (4, Str().Select(s => (FuzzJson)s)),
            (3, from n in Gen.Choose(1, 3) from items in Gen.ListOf(ResponseItem(), n) select (FuzzJson)new FuzzJson.Arr(items.ToList())),
            (1, Any()))),
        Optional("instructions", Str().Select(s => (FuzzJson)s)), Optional("max_output_tokens", Count(64)), Optional("stream", Boolean()),
        Optional("previous_response_id", Gen.Frequency((3, Gen.Elements("resp_missing", "", "resp_" + new string('0', 64)).Select(r => (FuzzJson)FuzzJson.Str.Of(r))), (1, Any()))),
        Optional("store", Boolean()), Optional("temperature", Number()), Optional("prompt_cache_key", Str().Select(s => (FuzzJson)s)),
        Optional("tools", Gen.Frequency(
            (3, from name in Word() select (FuzzJson)new FuzzJson.Arr([FuzzJson.Object(("type", FuzzJson.Str.Of("function")), ("name", name), ("parameters", FuzzJson.Object(("type", FuzzJson.Str.Of("object")))))])),
            (1, Any())))));

    /// <summary>The worker protocol's pin calls (worker only): session or block hashes, a TTL, a priority.</summary>
    public static FuzzEndpoint Retain { get; } = new("retain", "/worker/kv/retain", ErrorShape.OpenAi, Body(
        Optional("session_id", Str().Select(s => (FuzzJson)s)), Optional("block_hashes", Gen.Frequency((3, Gen.ListOf(Number()).Select(l => (FuzzJson)new FuzzJson.Arr(l.ToList()))), (1, Any()))),
        Required("ttl_ms", Count(10_000)), Optional("priority", Number()), Optional("value", Number())));

    public static FuzzEndpoint Release { get; } = new("release", "/worker/kv/release", ErrorShape.OpenAi, Body(
        Optional("session_id", Str().Select(s => (FuzzJson)s)), Optional("block_hashes", Gen.ListOf(Number()).Select(l => (FuzzJson)new FuzzJson.Arr(l.ToList())))));

    /// <summary>A whole request aimed at one of <paramref name="endpoints"/>; <paramref name="authorization"/> is the good key (null: none needed).</summary>
    public static Gen<FuzzInput> Request(IReadOnlyList<FuzzEndpoint> endpoints, string? authorization) =>
        from ep in Gen.Elements(endpoints.ToArray())
        from body in BodyBytes(ep)
        from route in Route(ep)
        from headers in Headers(authorization)
        from chunked in Gen.Frequency((9, Gen.Constant(false)), (1, Gen.Constant(true)))
        select new FuzzInput(ep.Name, route.Method, route.Path, headers.List, route.Method is "GET" or "DELETE" ? null : body, chunked, headers.Flood,
            // Only the endpoint itself owes its own shape; a wrong method or an unknown path gets the gateway's 404.
            route.Method == "POST" && route.Path.Split('?')[0].TrimEnd('/') == ep.Path ? ep.Shape : ErrorShape.OpenAi);

    private static Gen<byte[]> BodyBytes(FuzzEndpoint ep) => Gen.Frequency(
        (140, ep.Body.Select(b => b.Render())),
        (30, ep.Body.SelectMany(b => Mutate(b.Render()))),
        (20, Any().Select(a => a.Render())),
        (10, Gen.Elements<byte[]>([], " "u8.ToArray(), "null"u8.ToArray(), "\n\t "u8.ToArray(), [0xEF, 0xBB, 0xBF], "{}"u8.ToArray())),
        (1, ep.Body.SelectMany(b => Gen.Choose(1, 12).Select(n => Huge(b, n)))));

    /// <summary>A body padded by 0.5..6 MB (the gateway answers 413 past 4 MB): one giant string field.</summary>
    private static byte[] Huge(FuzzJson body, int halfMegabytes)
    {
        var padded = body is FuzzJson.Obj o
            ? new FuzzJson.Obj([.. o.Members, (FuzzJson.Str.Of("padding"), FuzzJson.Str.Of(new string('x', halfMegabytes * 512 * 1024)))])
            : body;
        return padded.Render();
    }

    private static Gen<(string Method, string Path)> Route(FuzzEndpoint ep) => Gen.Frequency(
        (24, Gen.Constant(("POST", ep.Path))),
        (1, Gen.Elements("GET", "PUT", "DELETE", "PATCH").Select(m => (m, ep.Path))),
        (1, Gen.Elements("?x=1", "?stream=true&model=%00", "/", "/../models", "%20", "?" + new string('a', 2000)).Select(s => ("POST", ep.Path + s))),
        (1, Gen.Elements("/v1/chat", "/v1/messages/batches", "/v1/CHAT/COMPLETIONS", "/v1/%ff%fe", "/v1/models/%2e%2e", "/v2/chat/completions").Select(p => ("POST", p))));

    private static Gen<((string, string)[] List, bool Flood)> Headers(string? authorization)
    {
        var auth = Gen.Frequency(
            (20, Gen.Constant(authorization is null ? null : "Bearer " + authorization)),
            (1, Gen.Constant<string?>(null)),
            (1, Gen.Elements<string?>("Bearer sk-wrong", "Bearer ", "Bearer", "Basic YTpi", "bearer " + authorization, "Bearer " + authorization + "\u00e9", "Bearer " + new string('k', 5000))));
        var contentType = Gen.Frequency(
            (12, Gen.Constant<string?>("application/json")),
            (1, Gen.Constant<string?>(null)),
            (2, Gen.Elements<string?>("text/plain", "application/json; charset=utf-16", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=\u00ff", ";;;", "*/*")));
        var extra = Gen.Frequency(
            (6, Gen.Constant(Array.Empty<(string, string)>())),
            (3, from n in Gen.Choose(1, 3) from hs in Gen.ListOf(HintHeader(), n) select hs.ToArray()));
        var flood = Gen.Frequency(
            (30, Gen.Constant(Array.Empty<(string, string)>())),
            (1, from n in Gen.Choose(40, 300) from len in Gen.Choose(1, 200) select Enumerable.Range(0, n).Select(i => ($"x-fuzz-{i}", new string('v', len))).ToArray()),
            (1, from len in Gen.Choose(1000, 40_000) select new[] { ("x-fuzz-huge", new string('h', len)) }));
        return from a in auth
               from ct in contentType
               from e in extra
               from f in flood
               select (Build(a, ct, e, f), f.Length > 0);
    }

    private static (string, string)[] Build(string? auth, string? contentType, (string, string)[] extra, (string, string)[] flood)
    {
        var list = new List<(string, string)>();
        if (auth is not null)
        {
            list.Add(("Authorization", auth));
        }

        if (contentType is not null)
        {
            list.Add(("Content-Type", contentType));
        }

        list.AddRange(extra);
        list.AddRange(flood);
        return [.. list];
    }

    /// <summary>Headers the gateway or worker read (session ids, hints it must drop, trace context), with odd values.</summary>
    private static Gen<(string, string)> HintHeader() =>
        from name in Gen.Elements("x-session-id", "x-claude-code-session-id", "session_id", "x-request-priority", "x-retention-ttl-ms",
            "x-cache-salt", "traceparent", "tracestate", "x-agent-turn", "accept", "accept-encoding", "expect", "connection")
        from value in Gen.Frequency(
            (3, Gen.Elements("", "1", "-1", "abc", "2147483648", "1001", "-1001", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                "gzip, br", "text/event-stream", "100-continue", "close", "\u00e9\u00ff\u0080", "null", "[]")),
            (1, Gen.Choose(1, 9000).Select(n => new string('s', n))))
        select (name, value);

    private static Gen<FuzzJson> ModelName() => Gen.Frequency(
        (12, Gen.Constant<FuzzJson>(FuzzJson.Str.Of(Model))),
        (1, Gen.Elements("gpt-9", "", " llama3-8b", "LLAMA3-8B", "llama3-8b\u0000").Select(m => (FuzzJson)FuzzJson.Str.Of(m))),
        (1, Str().Select(s => (FuzzJson)s)),
        (1, Any()));

    private static Gen<FuzzJson> Boolean() => Gen.Frequency((5, Gen.Elements(true, false).Select(FuzzJson.Bool)), (1, Any()));

    private static Gen<FuzzJson> StreamOptions() => Gen.Frequency(
        (3, Boolean().Select(b => (FuzzJson)FuzzJson.Object(("include_usage", b)))),
        (1, Any()));

    private static Gen<FuzzJson> Stop() => Gen.Frequency(
        (3, Str().Select(s => (FuzzJson)s)),
        (2, from n in Gen.Choose(0, 6) from l in Gen.ListOf(Str(), n) select (FuzzJson)new FuzzJson.Arr(l.ToList<FuzzJson>())),
        (1, Any()));

    private static Gen<FuzzJson> Prompt() => Gen.Frequency(
        (5, Str().Select(s => (FuzzJson)s)),
        (2, Str().Select(s => (FuzzJson)new FuzzJson.Arr([s]))),
        (1, from n in Gen.Choose(0, 4) from l in Gen.ListOf(Any(), n) select (FuzzJson)new FuzzJson.Arr(l.ToList())),
        (1, Any()));

    private static Gen<FuzzJson> EmbeddingInput() => Gen.Frequency(
        (4, Str().Select(s => (FuzzJson)s)),
        (3, from n in Gen.Choose(0, 8) from l in Gen.ListOf(Str(), n) select (FuzzJson)new FuzzJson.Arr(l.ToList<FuzzJson>())),
        (1, from n in Gen.Choose(2040, 2060) select (FuzzJson)new FuzzJson.Arr(Enumerable.Repeat<FuzzJson>(FuzzJson.Str.Of("x"), n).ToList())),
        (1, Any()));

    private static Gen<FuzzJson> ChatMessages() => Gen.Frequency(
        (40, from n in Gen.Choose(1, 4) from l in Gen.ListOf(Message(), n) select (FuzzJson)new FuzzJson.Arr(l.ToList())),
        (4, Gen.Constant<FuzzJson>(new FuzzJson.Arr([]))),
        (1, from n in Gen.Choose(100, 3000) from m in Message() select (FuzzJson)new FuzzJson.Arr(Enumerable.Repeat(m, n).ToList())),
        (4, Any()));

    private static Gen<FuzzJson> ResponseItem() => Gen.Frequency(
        (4, from role in Gen.Elements("user", "system", "developer", "assistant") from text in Str()
            select (FuzzJson)FuzzJson.Object(("role", FuzzJson.Str.Of(role)), ("content", text))),
        (2, from text in Str()
            select (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of("message")), ("role", FuzzJson.Str.Of("user")),
                ("content", new FuzzJson.Arr([FuzzJson.Object(("type", FuzzJson.Str.Of("input_text")), ("text", text))])))),
        (1, from id in Str() from output in Any()
            select (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of("function_call_output")), ("call_id", id), ("output", output))),
        (1, Any()));

    private static Gen<FuzzJson> TextBlocks() =>
        from n in Gen.Choose(0, 3)
        from texts in Gen.ListOf(Str(), n)
        select (FuzzJson)new FuzzJson.Arr(texts.Select(t => (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of("text")), ("text", t))).ToList());

    private static Gen<FuzzJson> AnthropicMessages() => Gen.Frequency(
        (10, from n in Gen.Choose(1, 4) from l in Gen.ListOf(AnthropicMessage(), n) select (FuzzJson)new FuzzJson.Arr(l.ToList())),
        (1, Gen.Constant<FuzzJson>(new FuzzJson.Arr([]))),
        (1, Any()));

    private static Gen<FuzzJson> AnthropicMessage() =>
        from role in Gen.Frequency((10, Gen.Elements("user", "assistant").Select(r => (FuzzJson)FuzzJson.Str.Of(r))), (1, Str().Select(s => (FuzzJson)s)), (1, Any()))
        from content in Gen.Frequency(
            (5, Str().Select(s => (FuzzJson)s)),
            (2, TextBlocks()),
            (1, from id in Str() from input in Any() select (FuzzJson)new FuzzJson.Arr([FuzzJson.Object(("type", FuzzJson.Str.Of("tool_use")), ("id", id), ("name", FuzzJson.Str.Of("read_file")), ("input", input))])),
            (1, from id in Str() from result in Any() select (FuzzJson)new FuzzJson.Arr([FuzzJson.Object(("type", FuzzJson.Str.Of("tool_result")), ("tool_use_id", id), ("content", result))])),
            (1, Any()))
        select (FuzzJson)FuzzJson.Object(("role", role), ("content", content));

    private static Gen<FuzzJson> Message() =>
        from role in Gen.Frequency(
            (10, Gen.Elements("system", "developer", "user", "assistant", "tool", "function").Select(r => (FuzzJson)FuzzJson.Str.Of(r))),
            (1, Str().Select(s => (FuzzJson)s)),
            (1, Any()))
        from content in Gen.Frequency(
            (6, Str().Select(s => (FuzzJson)s)),
            (1, Gen.Constant(FuzzJson.Null)),
            (2, from n in Gen.Choose(0, 3) from parts in Gen.ListOf(ContentPart(), n) select (FuzzJson)new FuzzJson.Arr(parts.ToList())),
            (1, Any()))
        from withContent in Gen.Frequency((9, Gen.Constant(true)), (1, Gen.Constant(false)))
        from extra in Gen.Frequency(
            (6, Gen.Constant(Array.Empty<(string, FuzzJson)>())),
            (1, ToolCalls().Select(t => new[] { ("tool_calls", t) })),
            (1, Str().Select(s => new[] { ("tool_call_id", (FuzzJson)s) })),
            (1, Any().Select(a => new[] { ("name", a) })))
        select (FuzzJson)FuzzJson.Object([("role", role), .. withContent ? new[] { ("content", content) } : [], .. extra]);

    private static readonly FuzzJson ImagePart =
        FuzzJson.Object(("type", FuzzJson.Str.Of("image_url")), ("image_url", FuzzJson.Object(("url", FuzzJson.Str.Of("data:image/png;base64,AAAA")))));

    private static Gen<FuzzJson> ContentPart() => Gen.Frequency(
        (4, Str().Select(s => (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of("text")), ("text", s)))),
        (1, Gen.Constant<FuzzJson>(ImagePart)),
        (1, Any()));

    private static Gen<FuzzJson> ToolCalls() => Gen.Frequency(
        (3, from name in Str() from args in Str()
            select (FuzzJson)new FuzzJson.Arr([FuzzJson.Object(("id", FuzzJson.Str.Of("call_1")), ("type", FuzzJson.Str.Of("function")),
                ("function", FuzzJson.Object(("name", name), ("arguments", args))))])),
        (1, Any()));

    private static Gen<FuzzJson> Tools() => Gen.Frequency(
        (4, from n in Gen.Choose(0, 3) from tools in Gen.ListOf(Tool(), n) select (FuzzJson)new FuzzJson.Arr(tools.ToList())),
        (1, Any()));

    private static Gen<FuzzJson> Tool() => Gen.Frequency(
        (4, from name in Gen.Frequency((4, Word()), (1, Str().Select(s => (FuzzJson)s)))
            from parameters in Gen.Frequency((3, Gen.Constant<FuzzJson>(FuzzJson.Object(("type", FuzzJson.Str.Of("object")), ("properties", FuzzJson.Object(("path", FuzzJson.Object(("type", FuzzJson.Str.Of("string"))))))))), (1, Any()))
            select (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of("function")), ("function", FuzzJson.Object(("name", name), ("parameters", parameters))))),
        (1, Any()));

    private static Gen<FuzzJson> ToolChoice() => Gen.Frequency(
        (3, Gen.Elements("auto", "none", "required", "read_file").Select(c => (FuzzJson)FuzzJson.Str.Of(c))),
        (1, Word().Select(w => (FuzzJson)FuzzJson.Object(("type", FuzzJson.Str.Of("function")), ("function", FuzzJson.Object(("name", w)))))),
        (1, Any()));

    private static Gen<(string Key, FuzzJson Value)?> Required(string key, Gen<FuzzJson> value) =>
        Gen.Frequency((12, value.Select(v => ((string, FuzzJson)?)(key, v))), (1, Gen.Constant<(string, FuzzJson)?>(null)));

    private static Gen<(string Key, FuzzJson Value)?> Optional(string key, Gen<FuzzJson> value) =>
        Gen.Frequency((1, value.Select(v => ((string, FuzzJson)?)(key, v))), (3, Gen.Constant<(string, FuzzJson)?>(null)));

    /// <summary>An object of the chosen fields in a shuffled order, with sometimes an unknown key or a duplicated one.</summary>
    private static Gen<FuzzJson> Body(params Gen<(string Key, FuzzJson Value)?>[] fields) =>
        from chosen in Gen.CollectToList(fields)
        from unknown in Gen.Frequency(
            (5, Gen.Constant(Array.Empty<(FuzzJson, FuzzJson)>())),
            (1, from k in Str() from v in Any() select new[] { ((FuzzJson)k, v) }))
        let members = chosen.Where(c => c is not null).Select(c => ((FuzzJson)FuzzJson.Str.Of(c!.Value.Key), c.Value.Value)).Concat(unknown).ToArray()
        from shuffled in Gen.Shuffle(members)
        from duplicate in Gen.Frequency((12, Gen.Constant(false)), (1, Gen.Constant(true)))
        select (FuzzJson)new FuzzJson.Obj(duplicate && shuffled.Length > 0 ? [.. shuffled, shuffled[0]] : [.. shuffled]);
}
