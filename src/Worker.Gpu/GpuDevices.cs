using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace Worker.Gpu;

/// <summary>Opens the accelerator a <see cref="GpuRunner"/> runs on: the first CUDA device, or ILGPU's CPU accelerator (tests).</summary>
public sealed class GpuDevice : IDisposable
{
    private readonly Context _context;

    private GpuDevice(Context context, Accelerator accelerator)
    {
        _context = context;
        Accelerator = accelerator;
    }

    public Accelerator Accelerator { get; }

    public string Name => Accelerator.Name;

    /// <summary>The first CUDA device; throws <see cref="NotSupportedException"/> naming what is missing when there is none.</summary>
    public static GpuDevice OpenCuda()
    {
        Context? context = null;
        try
        {
            context = Context.Create(b => b.Cuda().Optimize(OptimizationLevel.O2));
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
            {
                throw new NotSupportedException(
                    "the gpu backend needs an NVIDIA GPU with the CUDA driver (libcuda); none was found on this machine. " +
                    "Use --backend cpu, or run on a host with a CUDA device.");
            }

            return new GpuDevice(context, devices[0].CreateAccelerator(context));
        }
        catch (Exception e) when (e is not NotSupportedException)
        {
            context?.Dispose();
            throw new NotSupportedException($"the gpu backend could not open a CUDA device: {e.Message}", e);
        }
        catch
        {
            context?.Dispose();
            throw;
        }
    }

    /// <summary>ILGPU's CPU accelerator: runs the same kernels on the CPU (slowly) for tests.</summary>
    public static GpuDevice OpenCpu()
    {
        var context = Context.Create(b => b.CPU().Optimize(OptimizationLevel.O1));
        return new GpuDevice(context, context.CreateCPUAccelerator(0));
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        _context.Dispose();
    }
}
