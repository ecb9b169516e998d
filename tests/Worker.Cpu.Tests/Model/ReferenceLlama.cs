namespace Worker.Cpu.Tests.Model;

/// <summary>
/// A naive dense Llama forward pass straight from the GGUF bytes: every tensor decoded to f32 by its own code, no
/// K/V cache (each call recomputes the whole sequence), textbook softmax attention with an explicit causal mask,
/// RoPE from pos * theta^(-2i/d) in double. Shares nothing with the runner but the file format.
/// </summary>
internal sealed class ReferenceLlama
{
    private readonly LlamaConfig _c;
    private readonly Dictionary<string, float[]> _w = [];

    public ReferenceLlama(string path, LlamaConfig config)
    {
        _c = config;
        var f = GgufFile.Open(path);
        foreach (var t in f.Tensors)
        {
            var raw = new byte[t.ByteSize];
            f.ReadTensor(t, raw);
            _w[t.Name] = Decode(t.Type, raw, t.Elements);
        }
    }

    public static float[] Decode(GgufTensorType type, byte[] raw, long n)
    {
        var r = new float[n];
        for (long i = 0; i < n; i++)
            r[i] = type switch
            {
                GgufTensorType.F32 => BitConverter.ToSingle(raw, (int)(i * 4)),
                GgufTensorType.F16 => (float)BitConverter.ToHalf(raw, (int)(i * 2)),
                _ => (float)BitConverter.ToHalf(raw, (int)(i / 32 * 34)) * (sbyte)raw[i / 32 * 34 + 2 + i % 32],
            };
        return r;
    }

    /// <summary>Logits of the last token of <paramref name="tokens"/>.</summary>
    public float[] LastLogits(int[] tokens)
    {
        int n = tokens.Length, d = _c.Dim, hd = _c.HeadDim, kvd = _c.KvDim, group = _c.Heads / _c.KvHeads;
        var x = new float[n][];
        for (int t = 0; t < n; t++) x[t] = _w["token_embd.weight"].AsSpan(tokens[t] * d, d).ToArray();
        for (int l = 0; l < _c.Layers; l++)
        {
            var q = new float[n][]; var k = new float[n][]; var v = new float[n][];
            for (int t = 0; t < n; t++)
            {
                var xn = Norm(x[t], _w[$"blk.{l}.attn_norm.weight"]);
                q[t] = Rope(MatVec(_w[$"blk.{l}.attn_q.weight"], xn, d), t);
                k[t] = Rope(MatVec(_w[$"blk.{l}.attn_k.weight"], xn, kvd), t);
                v[t] = MatVec(_w[$"blk.{l}.attn_v.weight"], xn, kvd);
            }
            for (int t = 0; t < n; t++)
            {
                var att = new float[d];
                for (int h = 0; h < _c.Heads; h++)
                {
                    int g = h / group;
                    var scores = new double[t + 1];
                    for (int s = 0; s <= t; s++)
                    {
                        double dot = 0;
                        for (int i = 0; i < hd; i++) dot += q[t][h * hd + i] * k[s][g * hd + i];
                        scores[s] = dot / Math.Sqrt(hd);
                    }
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int s = 0; s <= t; s++)
                        for (int i = 0; i < hd; i++) att[h * hd + i] += (float)(Math.Exp(scores[s] - max) / sum * v[s][g * hd + i]);
                }
                var o = MatVec(_w[$"blk.{l}.attn_output.weight"], att, d);
                for (int i = 0; i < d; i++) x[t][i] += o[i];
                var xn = Norm(x[t], _w[$"blk.{l}.ffn_norm.weight"]);
                var gate = MatVec(_w[$"blk.{l}.ffn_gate.weight"], xn, _c.Hidden);
                var up = MatVec(_w[$"blk.{l}.ffn_up.weight"], xn, _c.Hidden);
                for (int i = 0; i < _c.Hidden; i++) gate[i] = (float)(gate[i] / (1 + Math.Exp(-gate[i])) * up[i]);
                var down = MatVec(_w[$"blk.{l}.ffn_down.weight"], gate, d);
                for (int i = 0; i < d; i++) x[t][i] += down[i];
            }
        }
        var final = Norm(x[n - 1], _w["output_norm.weight"]);
        return MatVec(_w.TryGetValue("output.weight", out var o2) ? o2 : _w["token_embd.weight"], final, _c.Vocab);
    }

    private float[] Rope(float[] v, int pos)
    {
        int hd = _c.HeadDim;
        for (int h = 0; h < v.Length / hd; h++)
            for (int i = 0; i < hd / 2; i++)
            {
                double theta = pos * Math.Pow(_c.RopeTheta, -2.0 * i / hd);
                double x0 = v[h * hd + 2 * i], x1 = v[h * hd + 2 * i + 1];
                v[h * hd + 2 * i] = (float)(x0 * Math.Cos(theta) - x1 * Math.Sin(theta));
                v[h * hd + 2 * i + 1] = (float)(x0 * Math.Sin(theta) + x1 * Math.Cos(theta));
            }
        return v;
    }

    private float[] Norm(float[] x, float[] w)
    {
        double ss = x.Sum(v => (double)v * v);
        double scale = 1 / Math.Sqrt(ss / x.Length + _c.NormEps);
        return x.Select((v, i) => (float)(v * scale * w[i])).ToArray();
    }

    private static float[] MatVec(float[] w, float[] x, int rows)
    {
        var y = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int i = 0; i < x.Length; i++) s += (double)w[(long)r * x.Length + i] * x[i];
            y[r] = (float)s;
        }
        return y;
    }
}
