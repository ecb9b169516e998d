using Llm.Prompt.Hashing;
using Worker.Backends;
using Worker.Engine;
using Worker.Gpu;
using Worker.Tests.Engine;

namespace Worker.Tests.Backends;

/// <summary>
/// The gpu backend behind the engine: the step executor driving the GPU runner (kernels on ILGPU's CPU accelerator,
/// sampling on the device) produces the CPU backend's tokens, greedy and with temperature; without a CUDA device
/// `--backend gpu` refuses at start-up with a message that names what is missing.
/// </summary>
public sealed class GpuBackendTests(TinyLlamaFixture tiny) : IClassFixture<TinyLlamaFixture>
{
    private const int BlockSize = 16, KvBlocks = 32, MaxBatchTokens = 64;

    [Theory]
    [InlineData(0f)]
    [InlineData(0.9f)]
    public void Engine_on_the_gpu_runner_generates_the_cpu_backends_tokens(float temperature)
    {
        var prompts = new[] { TokenEngineTests.Prompt(seed: 3, length: 37), TokenEngineTests.Prompt(seed: 4, length: 21) };
        using var device = GpuDevice.OpenCpu();
        using var gpu = new CpuStepExecutor(tiny.Model, new GpuRunner(device.Accelerator, tiny.Model, KvBlocks, BlockSize, MaxBatchTokens));
        using var cpu = new CpuStepExecutor(tiny.Model, KvBlocks, BlockSize, MaxBatchTokens, threads: 1);
        var expected = Run(cpu, prompts, temperature);
        Assert.All(expected, t => Assert.Equal(6, t.Count));
        Assert.Equal(expected, Run(gpu, prompts, temperature));
    }

    [Fact]
    public async Task Backend_gpu_without_a_cuda_device_refuses_at_startup()
    {
        bool hasCuda;
        try
        {
            using var probe = GpuDevice.OpenCuda();
            hasCuda = true;
        }
        catch (NotSupportedException)
        {
            hasCuda = false;
        }

        if (hasCuda)
        {
            return; // a CUDA machine serves --backend gpu; this test is about refusing where there is none
        }

        var options = WorkerCommandLine.Parse(["--urls", "http://127.0.0.1:0", "--backend", "gpu", "--model", tiny.Path, "--kv-blocks", "64"], out var errors, out _);
        Assert.Empty(errors);
        var e = await Assert.ThrowsAsync<NotSupportedException>(() => WorkerHost.StartAsync(options));
        Assert.Contains("gpu backend", e.Message, StringComparison.Ordinal);
        Assert.Contains("CUDA", e.Message, StringComparison.Ordinal);
        WorkerCommandLine.Parse(["--backend", "gpu"], out var missing, out _);
        Assert.Contains(missing, m => m.Contains("the gpu backend needs --model", StringComparison.Ordinal));
    }

    private static List<int>[] Run(CpuStepExecutor exec, int[][] prompts, float temperature)
    {
        var engine = new LlmEngine(new EngineOptions
        {
            Profile = ModelProfiles.Get(ModelProfiles.H100Llama3_8B),
            KvBlocks = KvBlocks,
            BlockSize = BlockSize,
            MaxBatchTokens = MaxBatchTokens,
            MaxModelLength = 4096,
        }, new FakeTimeProvider(), exec);
        var tokens = prompts.Select(_ => new List<int>()).ToArray();
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.True(engine.Submit(new EngineRequest
            {
                Id = "r" + i,
                Temperature = temperature,
                SamplingSeed = 42 + (ulong)i,
                PromptTokens = prompts[i].Length,
                PromptTokenIds = prompts[i],
                OutputTokens = 6,
                BlockHashes = BlockHasher.ComputeChain(prompts[i], 0, BlockSize),
            }, out var error), error);
        }

        for (int s = 0; s < 1000 && engine.HasWork; s++)
        {
            foreach (var ev in engine.Step().Events)
            {
                if (ev.Kind is SequenceEventKind.FirstToken or SequenceEventKind.Token)
                {
                    tokens[int.Parse(ev.RequestId[1..], System.Globalization.CultureInfo.InvariantCulture)].Add(ev.TokenId);
                }
            }
        }

        Assert.False(engine.HasWork);
        return tokens;
    }
}
