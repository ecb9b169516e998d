using System.Diagnostics;
using Worker.Cpu;
using Worker.Engine;

namespace Worker.Backends;

/// <summary>Sees the logits row of every chunk that samples a token (tests compare them across runs).</summary>
public delegate void LogitsObserver(string requestId, int position, ReadOnlySpan<float> logits);

/// <summary>
/// The cpu and gpu backends' step executor: runs an <see cref="IForwardRunner"/> (<see cref="LlamaRunner"/>, or the GPU
/// runner) on the engine's plan over a K/V pool shaped like the engine's block pool (same block count and block size,
/// so the engine's physical block ids address it directly), samples (argmax, lowest id on ties, or the seeded
/// temperature draw; on the device when the runner samples there and no logits observer is set) and returns the
/// measured wall time of the step. Token ids and block tables are copied into buffers owned here (the plan's spans are only valid for the step);
/// the buffers grow to the largest step seen, so a steady state allocates nothing. Not thread-safe (the engine loop
/// calls it under its lock).
/// </summary>
public sealed class CpuStepExecutor : ITokenStepExecutor, IDisposable
{
    private readonly IForwardRunner _runner;
    private float[] _temperatures = new float[16];
    private ulong[] _seeds = new ulong[16];
    private int[] _positions = new int[16];
    private int[] _sampled = new int[16];
    private readonly int _vocab;
    private int[] _tokens;
    private int[] _tables = new int[256];
    private SeqChunk[] _chunks = new SeqChunk[16];
    private float[] _logits;

    /// <param name="model">The loaded model (owned by the caller).</param>
    /// <param name="kvBlocks">Blocks in the engine's pool (<see cref="EngineOptions.EffectiveKvBlocks"/>).</param>
    /// <param name="blockSize">Tokens per block (<see cref="EngineOptions.BlockSize"/>).</param>
    /// <param name="maxBatchTokens">The engine's per-step token budget.</param>
    /// <param name="threads">Worker threads of the kernels.</param>
    public CpuStepExecutor(LlamaModel model, int kvBlocks, int blockSize, int maxBatchTokens, int threads)
        : this(model, new LlamaRunner(model, new KvPool(model.Config, kvBlocks, blockSize), maxBatchTokens, threads))
    {
    }

    /// <param name="model">The loaded model (owned by the caller).</param>
    /// <param name="runner">The forward pass (owned by this executor from now on).</param>
    public CpuStepExecutor(LlamaModel model, IForwardRunner runner)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(runner);
        Model = model;
        _runner = runner;
        _vocab = model.Config.Vocab;
        _tokens = new int[runner.MaxBatchTokens];
        _logits = new float[_vocab * 4];
    }

    public LlamaModel Model { get; }

    /// <summary>
    /// The host KV tier's copier over this executor's pool (<see cref="KvHostStore"/>), created on first use; null for a
    /// device runner (the GPU backend keeps no host copy of its K/V).
    /// </summary>
    public HostKvCopier? HostCopier => _runner is LlamaRunner cpu ? _hostCopier ??= new HostKvCopier(new KvHostStore(cpu.Pool)) : null;

    private HostKvCopier? _hostCopier;

    /// <summary>Kernel threads of a CPU runner (0 for a device runner).</summary>
    public int Threads => _runner is LlamaRunner r ? r.Threads : 0;

    /// <inheritdoc />
    public int EosTokenId => Model.Config.EosToken;

    /// <summary>Optional observer of each sampled row's logits (null in production).</summary>
    public LogitsObserver? OnLogits { get; set; }

    /// <inheritdoc />
    public TimeSpan Execute(StepPlan plan, Span<int> nextTokens)
    {
        ArgumentNullException.ThrowIfNull(plan);
        long start = Stopwatch.GetTimestamp();
        var chunks = plan.Chunks;
        int n = chunks.Count;
        if (_chunks.Length < n)
        {
            _chunks = new SeqChunk[Math.Max(n, _chunks.Length * 2)];
        }

        int tableTotal = 0;
        for (int i = 0; i < n; i++)
        {
            tableTotal += plan.BlockTable(i).Length;
        }

        if (_tables.Length < tableTotal)
        {
            _tables = new int[Math.Max(tableTotal, _tables.Length * 2)];
        }

        if (_logits.Length < plan.LogitsChunks * _vocab)
        {
            _logits = new float[plan.LogitsChunks * _vocab];
        }

        int tokenAt = 0, tableAt = 0;
        for (int i = 0; i < n; i++)
        {
            var c = chunks[i];
            var ids = plan.TokenIds(i);
            var table = plan.BlockTable(i);
            foreach (int id in ids)
            {
                if ((uint)id >= (uint)_vocab)
                {
                    throw new InvalidOperationException($"token id {id} is outside the model's vocabulary of {_vocab}");
                }
            }

            ids.CopyTo(_tokens.AsSpan(tokenAt));
            table.CopyTo(_tables.AsSpan(tableAt));
            _chunks[i] = new SeqChunk(
                _tokens.AsMemory(tokenAt, ids.Length), c.ContextTokens, _tables.AsMemory(tableAt, table.Length), c.WantsLogits);
            tokenAt += ids.Length;
            tableAt += table.Length;
        }

        _runner.Forward(_chunks.AsSpan(0, n), _logits);
        if (OnLogits is null && _runner is IDeviceSampler device)
        {
            SampleOnDevice(plan, device, nextTokens);
            return Stopwatch.GetElapsedTime(start);
        }

        int row = 0;
        for (int i = 0; i < n; i++)
        {
            var c = chunks[i];
            if (!c.WantsLogits)
            {
                continue;
            }

            var logits = _logits.AsSpan(row++ * _vocab, _vocab);
            int position = c.ContextTokens + c.NewTokens - 1;
            OnLogits?.Invoke(c.RequestId, position, logits);
            var r = plan.RequestAt(i);
            nextTokens[i] = r.Temperature > 0 ? Sample(logits, r.Temperature, r.SamplingSeed, position) : Argmax(logits);
        }

        return Stopwatch.GetElapsedTime(start);
    }

    private void SampleOnDevice(StepPlan plan, IDeviceSampler device, Span<int> nextTokens)
    {
        var chunks = plan.Chunks;
        int rows = plan.LogitsChunks;
        if (_temperatures.Length < rows)
        {
            int size = Math.Max(rows, _temperatures.Length * 2);
            (_temperatures, _seeds, _positions, _sampled) = (new float[size], new ulong[size], new int[size], new int[size]);
        }

        for (int i = 0, row = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            if (!c.WantsLogits)
            {
                continue;
            }

            var r = plan.RequestAt(i);
            _temperatures[row] = r.Temperature;
            _seeds[row] = r.SamplingSeed;
            _positions[row++] = c.ContextTokens + c.NewTokens - 1;
        }

        device.Sample(_temperatures.AsSpan(0, rows), _seeds.AsSpan(0, rows), _positions.AsSpan(0, rows), _sampled);
        for (int i = 0, row = 0; i < chunks.Count; i++)
        {
            if (chunks[i].WantsLogits)
            {
                nextTokens[i] = _sampled[row++];
            }
        }
    }

    /// <summary>
    /// Times a cold prefill of <paramref name="tokens"/> byte tokens and one decode step after it, writing K/V into the
    /// first blocks of the pool: call it only before the engine has allocated anything. Returns (prefill, decode) seconds,
    /// each the best of <paramref name="repeats"/> runs (the first run also pays JIT and page faults), with the prefill length used.
    /// </summary>
    public (int Tokens, double PrefillSeconds, double DecodeSeconds) Calibrate(int tokens, int repeats = 2)
    {
        int blockSize = _runner.BlockSize;
        tokens = Math.Clamp(tokens, 1, Math.Min(_runner.MaxBatchTokens, _runner.NumBlocks * blockSize - 1));
        var ids = new int[tokens + 1];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = Llm.Prompt.Tokenization.ByteTokenizer.FirstByteId + 'a' + i % 26;
        }

        var table = Enumerable.Range(0, (tokens + blockSize) / blockSize).ToArray();
        double prefill = double.MaxValue, decode = double.MaxValue;
        for (int r = 0; r < Math.Max(1, repeats); r++)
        {
            long t0 = Stopwatch.GetTimestamp();
            _runner.Forward([new SeqChunk(ids.AsMemory(0, tokens), 0, table, true)], _logits);
            long t1 = Stopwatch.GetTimestamp();
            _runner.Forward([new SeqChunk(ids.AsMemory(tokens, 1), tokens, table, true)], _logits);
            prefill = Math.Min(prefill, Stopwatch.GetElapsedTime(t0, t1).TotalSeconds);
            decode = Math.Min(decode, Stopwatch.GetElapsedTime(t1).TotalSeconds);
        }

        return (tokens, prefill, decode);
    }

    /// <inheritdoc cref="Sampler.Sample"/>
    public static int Sample(Span<float> logits, float temperature, ulong seed, int position) => Sampler.Sample(logits, temperature, seed, position);

    /// <inheritdoc cref="Sampler.Argmax"/>
    public static int Argmax(ReadOnlySpan<float> logits) => Sampler.Argmax(logits);

    public void Dispose() => _runner.Dispose();
}

/// <summary>The engine's <see cref="IKvBlockCopier"/> over the CPU backend's <see cref="KvHostStore"/>.</summary>
public sealed class HostKvCopier(KvHostStore store) : IKvBlockCopier
{
    /// <summary>The store (copies, bytes, timings).</summary>
    public KvHostStore Store { get; } = store;

    /// <inheritdoc />
    public void CopyOut(int block, ulong hash) => Store.CopyOut(block, hash);

    /// <inheritdoc />
    public void CopyIn(ulong hash, int block)
    {
        if (!Store.CopyIn(hash, block))
        {
            throw new InvalidOperationException($"host tier block {hash} has no stored K/V (the engine and the store disagree)");
        }
    }

    /// <inheritdoc />
    public void Forget(ulong hash) => Store.Forget(hash);

    /// <inheritdoc />
    public void Clear() => Store.Clear();
}
