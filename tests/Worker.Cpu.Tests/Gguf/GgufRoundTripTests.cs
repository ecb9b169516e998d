namespace Worker.Cpu.Tests.Gguf;

public sealed class GgufRoundTripTests
{
    [Theory]
    [InlineData(GgufTensorType.F32)]
    [InlineData(GgufTensorType.F16)]
    [InlineData(GgufTensorType.Q8_0)]
    public void RandomLlamaGguf_ReadsBackWithLlamaCppMetadataTensorsAndVocabulary(GgufTensorType type)
    {
        var shape = TestModels.Tiny;
        var f = GgufFile.Open(TestModels.Path(shape, type));
        Assert.Equal(3u, f.Version);
        Assert.Equal(32, f.Alignment);
        Assert.Equal("llama", f.Get<string>("general.architecture"));
        Assert.Equal(shape.Dim, f.Get<int>("llama.embedding_length"));
        Assert.Equal(shape.Layers, f.Get<int>("llama.block_count"));
        Assert.Equal(shape.Hidden, f.Get<int>("llama.feed_forward_length"));
        Assert.Equal(shape.Heads, f.Get<int>("llama.attention.head_count"));
        Assert.Equal(shape.KvHeads, f.Get<int>("llama.attention.head_count_kv"));
        Assert.Equal(shape.MaxContext, f.Get<int>("llama.context_length"));
        Assert.Equal(shape.Dim / shape.Heads, f.Get<int>("llama.rope.dimension_count"));
        Assert.Equal(shape.RopeTheta, f.Get<float>("llama.rope.freq_base"));
        Assert.Equal(shape.NormEps, f.Get<float>("llama.attention.layer_norm_rms_epsilon"));
        Assert.Equal("llama", f.Get<string>("tokenizer.ggml.model"));
        var tokens = f.Get<string[]>("tokenizer.ggml.tokens");
        var types = f.Get<int[]>("tokenizer.ggml.token_type");
        Assert.Equal(shape.Vocab, tokens.Length);
        Assert.Equal(shape.Vocab, f.Get<float[]>("tokenizer.ggml.scores").Length);
        Assert.Equal(["<unk>", "<s>", "</s>", "<0x00>"], tokens[..4]);
        Assert.Equal("<0xFF>", tokens[258]);
        Assert.All(types[3..259], t => Assert.Equal(6, t));
        Assert.Equal(tokens.Length, tokens.Distinct().Count());
        Assert.Equal(1, f.Get<int>("tokenizer.ggml.bos_token_id"));
        Assert.Equal(2, f.Get<int>("tokenizer.ggml.eos_token_id"));

        Assert.Equal(2 + 9 * shape.Layers, f.Tensors.Count);
        var embd = f.Tensor("token_embd.weight");
        Assert.Equal([shape.Dim, shape.Vocab], embd.Dims);
        Assert.Equal(type, embd.Type);
        Assert.Equal([shape.Dim, shape.Dim / shape.Heads * shape.KvHeads], f.Tensor("blk.1.attn_k.weight").Dims);
        Assert.Equal([shape.Hidden, shape.Dim], f.Tensor("blk.0.ffn_down.weight").Dims);
        Assert.Equal(GgufTensorType.F32, f.Tensor("blk.0.attn_norm.weight").Type);
        Assert.Null(f.TryTensor("output.weight"));
        Assert.All(f.Tensors, t => Assert.Equal(0, t.Offset % 32));
    }

    [Fact]
    public void Writer_SameShapeSeedAndType_GivesIdenticalBytes_DifferentSeedDiffers()
    {
        var dir = Directory.CreateTempSubdirectory("gguf-det-").FullName;
        try
        {
            string a = Path.Combine(dir, "a.gguf"), b = Path.Combine(dir, "b.gguf"), c = Path.Combine(dir, "c.gguf");
            RandomLlamaGguf.Write(a, TestModels.Tiny, 42, GgufTensorType.Q8_0);
            RandomLlamaGguf.Write(b, TestModels.Tiny, 42, GgufTensorType.Q8_0);
            RandomLlamaGguf.Write(c, TestModels.Tiny, 43, GgufTensorType.Q8_0);
            Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
            Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void TensorData_RoundTripsPerType()
    {
        var dir = Directory.CreateTempSubdirectory("gguf-rt-").FullName;
        try
        {
            var values = Enumerable.Range(0, 64 * 3).Select(i => MathF.Sin(i * 0.37f) * (1 + i % 5)).ToArray();
            foreach (var type in new[] { GgufTensorType.F32, GgufTensorType.F16, GgufTensorType.Q8_0 })
            {
                var w = new GgufWriter();
                w.Add("general.architecture", "test");
                w.AddTensor("x", [64, 3], type, (r, row) => values.AsSpan((int)r * 64, 64).CopyTo(row));
                var path = Path.Combine(dir, $"{type}.gguf");
                w.Write(path);
                var f = GgufFile.Open(path);
                var t = f.Tensor("x");
                var raw = new byte[t.ByteSize];
                f.ReadTensor(t, raw);
                var back = Model.ReferenceLlama.Decode(type, raw, t.Elements);
                for (int i = 0; i < values.Length; i++)
                {
                    float bound = type switch
                    {
                        GgufTensorType.F32 => 0,
                        GgufTensorType.F16 => MathF.Abs(values[i]) * 1e-3f,
                        // half a quantization step of the value's 32-block, plus 127 x the f16 rounding of the scale
                        _ => values.Skip(i / 32 * 32).Take(32).Max(MathF.Abs) / 127f * (0.5f + 127f / 2048f),
                    };
                    Assert.True(MathF.Abs(back[i] - values[i]) <= bound, $"{type} [{i}] {back[i]} vs {values[i]}");
                }
            }
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Load_RejectsOtherArchitecturesVersionsAndTensorTypes()
    {
        var dir = Directory.CreateTempSubdirectory("gguf-bad-").FullName;
        try
        {
            var w = new GgufWriter();
            w.Add("general.architecture", "gpt2");
            var arch = Path.Combine(dir, "arch.gguf");
            w.Write(arch);
            Assert.Contains("architecture 'gpt2'", Assert.Throws<NotSupportedException>(() => LlamaModel.Load(arch)).Message);

            var bytes = File.ReadAllBytes(TestModels.Path(TestModels.Tiny));
            var v1 = Path.Combine(dir, "v1.gguf");
            var copy = (byte[])bytes.Clone();
            BitConverter.TryWriteBytes(copy.AsSpan(4), 1u);
            File.WriteAllBytes(v1, copy);
            Assert.Contains("version 1", Assert.Throws<InvalidDataException>(() => GgufFile.Open(v1)).Message);

            // Retype the first tensor (token_embd.weight) to Q4_0 (2): the reader names it and the supported types.
            var f = GgufFile.Open(TestModels.Path(TestModels.Tiny));
            int typeOffset = IndexOfTensorType(bytes, "token_embd.weight");
            copy = (byte[])bytes.Clone();
            BitConverter.TryWriteBytes(copy.AsSpan(typeOffset), 2u);
            var q4 = Path.Combine(dir, "q4.gguf");
            File.WriteAllBytes(q4, copy);
            var e = Assert.Throws<NotSupportedException>(() => GgufFile.Open(q4));
            Assert.Contains("'token_embd.weight' has type 2", e.Message);
            Assert.NotNull(f);

            File.WriteAllBytes(Path.Combine(dir, "junk.gguf"), [1, 2, 3, 4, 5, 6, 7, 8]);
            Assert.Throws<InvalidDataException>(() => GgufFile.Open(Path.Combine(dir, "junk.gguf")));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    /// <summary>Offset of the type field of a tensor header: name, n_dims (u32), dims (u64 each), then type.</summary>
    private static int IndexOfTensorType(byte[] file, string name)
    {
        var needle = System.Text.Encoding.UTF8.GetBytes(name);
        int at = file.AsSpan().IndexOf(needle) + needle.Length;
        uint nDims = BitConverter.ToUInt32(file, at);
        return at + 4 + (int)nDims * 8;
    }
}
