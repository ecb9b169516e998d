namespace Worker.Cpu;

/// <summary>Hyperparameters of a loaded Llama model (HeadDim = Dim / Heads).</summary>
public sealed record LlamaConfig(int Vocab, int Dim, int Layers, int Heads, int KvHeads, int HeadDim, int Hidden,
    int MaxContext, float RopeTheta, float NormEps, int BosToken, int EosToken)
{
    public int KvDim => KvHeads * HeadDim;
}

/// <summary>One transformer block's weights.</summary>
internal sealed class LlamaLayer(WeightMatrix attnNorm, WeightMatrix wq, WeightMatrix wk, WeightMatrix wv, WeightMatrix wo,
    WeightMatrix ffnNorm, WeightMatrix gate, WeightMatrix up, WeightMatrix down)
{
    public WeightMatrix AttnNorm { get; } = attnNorm;
    public WeightMatrix Wq { get; } = wq;
    public WeightMatrix Wk { get; } = wk;
    public WeightMatrix Wv { get; } = wv;
    public WeightMatrix Wo { get; } = wo;
    public WeightMatrix FfnNorm { get; } = ffnNorm;
    public WeightMatrix Gate { get; } = gate;
    public WeightMatrix Up { get; } = up;
    public WeightMatrix Down { get; } = down;
    public IEnumerable<WeightMatrix> All => [AttnNorm, Wq, Wk, Wv, Wo, FfnNorm, Gate, Up, Down];
}

/// <summary>
/// A Llama-architecture model loaded from GGUF (general.architecture = llama; F32/F16/Q8_0 tensors) into native
/// memory. Immutable after load and shared by any number of <see cref="LlamaRunner"/>s; dispose after the runners.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    public LlamaConfig Config { get; }
    /// <summary>Token strings from tokenizer.ggml.tokens (empty when the file has no tokenizer).</summary>
    public IReadOnlyList<string> Vocabulary { get; }
    /// <summary>Bytes of weights a decode step streams per token: every layer matrix, the norms and the output matrix.</summary>
    public long WeightBytes { get; }
    /// <summary>Type of the layer matrices (what the file was quantized to).</summary>
    public GgufTensorType WeightType { get; }

    internal WeightMatrix Embedding { get; }
    internal LlamaLayer[] Layers { get; }
    internal WeightMatrix OutputNorm { get; }
    internal WeightMatrix Output { get; }
    private readonly bool _tied;

    private LlamaModel(LlamaConfig config, IReadOnlyList<string> vocabulary, WeightMatrix embedding, LlamaLayer[] layers,
        WeightMatrix outputNorm, WeightMatrix? output)
    {
        Config = config;
        Vocabulary = vocabulary;
        Embedding = embedding;
        Layers = layers;
        OutputNorm = outputNorm;
        _tied = output is null;
        Output = output ?? embedding;
        WeightType = layers[0].Wq.Type;
        WeightBytes = layers.Sum(l => l.All.Sum(m => m.FileBytes)) + outputNorm.FileBytes + Output.FileBytes;
    }

    public static LlamaModel Load(string path)
    {
        var f = GgufFile.Open(path);
        string arch = f.TryGet<string>("general.architecture", out var a) ? a : "(none)";
        if (arch != "llama") throw new NotSupportedException($"GGUF {path}: architecture '{arch}' is not supported; the CPU backend runs 'llama'");
        var embd = f.Tensor("token_embd.weight");
        int dim = f.Get<int>("llama.embedding_length");
        int heads = f.Get<int>("llama.attention.head_count");
        int kvHeads = f.TryGet<int>("llama.attention.head_count_kv", out var kv) ? kv : heads;
        int headDim = heads > 0 ? dim / heads : 0;
        var config = new LlamaConfig(
            Vocab: checked((int)embd.Rows),
            Dim: dim,
            Layers: f.Get<int>("llama.block_count"),
            Heads: heads,
            KvHeads: kvHeads,
            HeadDim: headDim,
            Hidden: f.Get<int>("llama.feed_forward_length"),
            MaxContext: f.Get<int>("llama.context_length"),
            RopeTheta: f.TryGet<float>("llama.rope.freq_base", out var theta) ? theta : 10000f,
            NormEps: f.TryGet<float>("llama.attention.layer_norm_rms_epsilon", out var eps) ? eps : 1e-5f,
            BosToken: f.TryGet<int>("tokenizer.ggml.bos_token_id", out var bos) ? bos : 1,
            EosToken: f.TryGet<int>("tokenizer.ggml.eos_token_id", out var eos) ? eos : 2);
        Validate(f, config);
        var vocab = f.TryGet<string[]>("tokenizer.ggml.tokens", out var tokens) ? tokens : [];

        var loaded = new List<WeightMatrix>();
        WeightMatrix Load(string name, long cols, long rows)
        {
            var t = f.Tensor(name);
            if (t.Cols != cols || t.Rows != rows)
                throw new InvalidDataException($"GGUF {path}: tensor '{name}' is [{string.Join(", ", t.Dims)}], expected [{cols}, {rows}]");
            var m = WeightMatrix.Load(f, t);
            loaded.Add(m);
            return m;
        }
        try
        {
            var embedding = Load("token_embd.weight", dim, config.Vocab);
            var layers = new LlamaLayer[config.Layers];
            for (int l = 0; l < config.Layers; l++)
            {
                layers[l] = new LlamaLayer(
                    Load($"blk.{l}.attn_norm.weight", dim, 1),
                    Load($"blk.{l}.attn_q.weight", dim, dim),
                    Load($"blk.{l}.attn_k.weight", dim, config.KvDim),
                    Load($"blk.{l}.attn_v.weight", dim, config.KvDim),
                    Load($"blk.{l}.attn_output.weight", dim, dim),
                    Load($"blk.{l}.ffn_norm.weight", dim, 1),
                    Load($"blk.{l}.ffn_gate.weight", dim, config.Hidden),
                    Load($"blk.{l}.ffn_up.weight", dim, config.Hidden),
                    Load($"blk.{l}.ffn_down.weight", config.Hidden, dim));
                foreach (var norm in new[] { layers[l].AttnNorm, layers[l].FfnNorm })
                    if (norm.Type != GgufTensorType.F32) throw new NotSupportedException($"GGUF {path}: norm weights must be F32");
            }
            var outputNorm = Load("output_norm.weight", dim, 1);
            if (outputNorm.Type != GgufTensorType.F32) throw new NotSupportedException($"GGUF {path}: norm weights must be F32");
            var output = f.TryTensor("output.weight") is null ? null : Load("output.weight", dim, config.Vocab);
            return new LlamaModel(config, vocab, embedding, layers, outputNorm, output);
        }
        catch
        {
            foreach (var m in loaded) m.Dispose();
            throw;
        }
    }

    private static void Validate(GgufFile f, LlamaConfig c)
    {
        var errors = new List<string>();
        if (c.Dim <= 0 || c.Heads <= 0 || c.KvHeads <= 0 || c.Layers <= 0 || c.Hidden <= 0 || c.MaxContext <= 0) errors.Add("non-positive hyperparameter");
        else
        {
            if (c.Dim % c.Heads != 0) errors.Add("embedding_length is not a multiple of head_count");
            if (c.Heads % c.KvHeads != 0) errors.Add("head_count is not a multiple of head_count_kv");
            if (c.HeadDim % 2 != 0) errors.Add("head dim is odd");
            if (f.TryGet<int>("llama.rope.dimension_count", out var ropeDims) && ropeDims != c.HeadDim)
                errors.Add($"partial RoPE (rope.dimension_count {ropeDims} != head dim {c.HeadDim}) is not supported");
        }
        if (f.Metadata.ContainsKey("llama.rope.scaling.type") && f.Get<string>("llama.rope.scaling.type") is not ("none" or ""))
            errors.Add("RoPE scaling is not supported");
        if (f.Metadata.ContainsKey("llama.expert_count")) errors.Add("mixture-of-experts is not supported");
        if (errors.Count > 0) throw new NotSupportedException($"GGUF {f.Path}: " + string.Join("; ", errors));
    }

    public void Dispose()
    {
        Embedding.Dispose();
        foreach (var l in Layers) foreach (var m in l.All) m.Dispose();
        OutputNorm.Dispose();
        if (!_tied) Output.Dispose();
    }
}
