using Gateway.Configuration;
using Llm.Prompt.Tokenization;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy.Pipeline;

/// <summary>
/// The tokenizer the gateway counts a model's prompts with (<c>Gateway:Routing:ModelTokenizers</c>, else
/// <c>Gateway:Routing:Tokenizer</c>), each spec loaded once per host.
/// </summary>
public sealed class PromptTokenizers
{
    private readonly ITokenizer _default;
    private readonly Dictionary<string, ITokenizer> _byModel = new(StringComparer.Ordinal);

    /// <summary>Loads the configured tokenizers (singleton).</summary>
    public PromptTokenizers(IOptions<GatewayOptions> options)
    {
        var o = options.Value;
        var loaded = new Dictionary<string, ITokenizer>(StringComparer.Ordinal);
        ITokenizer Load(string spec) => loaded.TryGetValue(spec, out var t) ? t : loaded[spec] = Tokenizers.Create(spec);
        _default = Load(o.Routing.EffectiveTokenizer(o.Workers));
        foreach (var (model, spec) in o.Routing.ModelTokenizers)
        {
            _byModel[model] = Load(spec);
        }
    }

    /// <summary>The tokenizer for <paramref name="model"/> (the served name).</summary>
    public ITokenizer For(string model) => _byModel.GetValueOrDefault(model) ?? _default;
}
