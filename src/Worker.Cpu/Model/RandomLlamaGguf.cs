using System.Globalization;

namespace Worker.Cpu;

/// <summary>Shape of a Llama model: vocabulary, width, depth, attention heads (query and K/V), MLP width.</summary>
public sealed record LlamaShape(int Vocab, int Dim, int Layers, int Heads, int KvHeads, int Hidden,
    int MaxContext = 4096, float RopeTheta = 10000f, float NormEps = 1e-5f, bool TiedOutput = true);

/// <summary>
/// Writes a seeded random-weight Llama GGUF that llama.cpp loads: tensor names and metadata as llama.cpp's converter
/// writes them, and an SPM-style byte vocabulary (0 &lt;unk&gt;, 1 &lt;s&gt;, 2 &lt;/s&gt;, 3..258 the byte tokens
/// &lt;0x00&gt;..&lt;0xFF&gt;, then unique filler tokens up to <see cref="LlamaShape.Vocab"/>). 2-D weights get
/// <c>type</c>; norms stay F32 (as llama.cpp's quantizer leaves them). Same shape + seed + type = same bytes.
/// </summary>
public static class RandomLlamaGguf
{
    public const int ByteTokenOffset = 3;
    public const int MinVocab = ByteTokenOffset + 256;

    public static void Write(string path, LlamaShape shape, int seed, GgufTensorType type = GgufTensorType.F32)
    {
        Validate(shape, type);
        int headDim = shape.Dim / shape.Heads;
        int kvDim = headDim * shape.KvHeads;
        var w = new GgufWriter();
        w.Add("general.architecture", "llama");
        w.Add("general.name", $"random-llama-{shape.Dim}x{shape.Layers}-seed{seed}");
        w.Add("general.file_type", type switch { GgufTensorType.F32 => 0u, GgufTensorType.F16 => 1u, _ => 7u });
        w.Add("llama.vocab_size", (uint)shape.Vocab);
        w.Add("llama.context_length", (uint)shape.MaxContext);
        w.Add("llama.embedding_length", (uint)shape.Dim);
        w.Add("llama.block_count", (uint)shape.Layers);
        w.Add("llama.feed_forward_length", (uint)shape.Hidden);
        w.Add("llama.attention.head_count", (uint)shape.Heads);
        w.Add("llama.attention.head_count_kv", (uint)shape.KvHeads);
        w.Add("llama.rope.freq_base", shape.RopeTheta);
        w.Add("llama.rope.dimension_count", (uint)headDim);
        w.Add("llama.attention.layer_norm_rms_epsilon", shape.NormEps);
        var (tokens, scores, types) = Vocabulary(shape.Vocab);
        w.Add("tokenizer.ggml.model", "llama");
        w.Add("tokenizer.ggml.tokens", tokens);
        w.Add("tokenizer.ggml.scores", scores);
        w.Add("tokenizer.ggml.token_type", types);
        w.Add("tokenizer.ggml.bos_token_id", 1u);
        w.Add("tokenizer.ggml.eos_token_id", 2u);
        w.Add("tokenizer.ggml.unknown_token_id", 0u);
        w.Add("tokenizer.ggml.add_bos_token", true);
        w.Add("tokenizer.ggml.add_eos_token", false);

        // One generator per tensor, seeded from (seed, tensor index) (HashCode is per-process random, so plain arithmetic): rows are filled in order, so a file is a pure
        // function of (shape, seed, type).
        int index = 0;
        void Matrix(string name, int cols, int rows, float scale)
        {
            var rng = new Random(unchecked(seed * 1_000_003 + index++));
            w.AddTensor(name, [cols, rows], type, (_, row) => { for (int i = 0; i < row.Length; i++) row[i] = (float)((rng.NextDouble() * 2 - 1) * scale); });
        }
        void Norm(string name)
        {
            var rng = new Random(unchecked(seed * 1_000_003 + index++));
            w.AddTensor(name, [shape.Dim], GgufTensorType.F32, (_, row) => { for (int i = 0; i < row.Length; i++) row[i] = (float)(1 + (rng.NextDouble() * 2 - 1) * 0.1); });
        }
        // Uniform(-a, a) has std a/sqrt(3): a = sqrt(3/fanIn) keeps activations near unit scale through the layers.
        float In(int fanIn) => MathF.Sqrt(3f / fanIn);
        Matrix("token_embd.weight", shape.Dim, shape.Vocab, 1f);
        for (int l = 0; l < shape.Layers; l++)
        {
            Norm($"blk.{l}.attn_norm.weight");
            Matrix($"blk.{l}.attn_q.weight", shape.Dim, shape.Dim, In(shape.Dim));
            Matrix($"blk.{l}.attn_k.weight", shape.Dim, kvDim, In(shape.Dim));
            Matrix($"blk.{l}.attn_v.weight", shape.Dim, kvDim, In(shape.Dim));
            Matrix($"blk.{l}.attn_output.weight", shape.Dim, shape.Dim, In(shape.Dim));
            Norm($"blk.{l}.ffn_norm.weight");
            Matrix($"blk.{l}.ffn_gate.weight", shape.Dim, shape.Hidden, In(shape.Dim));
            Matrix($"blk.{l}.ffn_up.weight", shape.Dim, shape.Hidden, In(shape.Dim));
            Matrix($"blk.{l}.ffn_down.weight", shape.Hidden, shape.Dim, In(shape.Hidden));
        }
        Norm("output_norm.weight");
        if (!shape.TiedOutput) Matrix("output.weight", shape.Dim, shape.Vocab, In(shape.Dim));
        w.Write(path);
    }

    /// <summary>The SPM-style vocabulary described on the class.</summary>
    public static (string[] Tokens, float[] Scores, int[] Types) Vocabulary(int vocab)
    {
        var tokens = new string[vocab];
        var scores = new float[vocab];
        var types = new int[vocab];
        tokens[0] = "<unk>"; types[0] = 2;
        tokens[1] = "<s>"; types[1] = 3;
        tokens[2] = "</s>"; types[2] = 3;
        for (int b = 0; b < 256; b++)
        {
            tokens[ByteTokenOffset + b] = string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>");
            types[ByteTokenOffset + b] = 6;
        }
        for (int i = MinVocab; i < vocab; i++)
        {
            tokens[i] = string.Create(CultureInfo.InvariantCulture, $"\u2581t{i}");
            scores[i] = -i;
            types[i] = 1;
        }
        return (tokens, scores, types);
    }

    private static void Validate(LlamaShape s, GgufTensorType type)
    {
        var errors = new List<string>();
        if (s.Vocab < MinVocab) errors.Add($"Vocab must be >= {MinVocab} (special + byte tokens)");
        if (s.Dim <= 0 || s.Heads <= 0 || s.KvHeads <= 0 || s.Layers <= 0 || s.Hidden <= 0) errors.Add("sizes must be positive");
        else
        {
            if (s.Dim % s.Heads != 0) errors.Add("Dim must be a multiple of Heads");
            else if (s.Dim / s.Heads % 2 != 0) errors.Add("head dim must be even (RoPE rotates pairs)");
            if (s.Heads % s.KvHeads != 0) errors.Add("Heads must be a multiple of KvHeads");
            if (type == GgufTensorType.Q8_0 && (s.Dim % 32 != 0 || s.Hidden % 32 != 0)) errors.Add("Q8_0 needs Dim and Hidden multiples of 32");
        }
        if (!Enum.IsDefined(type)) errors.Add($"unsupported type {type}");
        if (errors.Count > 0) throw new ArgumentException("invalid LlamaShape: " + string.Join("; ", errors));
    }
}
