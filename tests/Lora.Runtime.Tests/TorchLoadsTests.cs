using Lora.Backend;
using TorchSharp;

namespace Lora.Runtime.Tests;

public class TorchLoadsTests
{
    [Fact]
    public void LibTorch_loads_and_computes_on_cpu()
    {
        var device = TorchRuntime.Initialize(DeviceSpec.Cpu);
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2], device: device);
        var b = torch.tensor(new float[] { 5, 6, 7, 8 }, [2, 2], device: device);
        var product = torch.mm(a, b).data<float>().ToArray();
        Assert.Equal(new float[] { 19, 22, 43, 50 }, product);
    }

    [Theory]
    [InlineData("auto", DeviceSpec.Kind.Auto, -1)]
    [InlineData("CPU", DeviceSpec.Kind.Cpu, -1)]
    [InlineData("cuda", DeviceSpec.Kind.Cuda, -1)]
    [InlineData("cuda:1", DeviceSpec.Kind.Cuda, 1)]
    public void Device_specs_parse(string text, DeviceSpec.Kind kind, int index)
    {
        Assert.Equal(new DeviceSpec(kind, index), DeviceSpec.Parse(text));
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("cuda:x")]
    [InlineData("cuda:-1")]
    public void Bad_device_specs_say_what_is_accepted(string text)
    {
        var e = Assert.Throws<LoraException>(() => DeviceSpec.Parse(text));
        Assert.Contains("auto, cpu, cuda or cuda:N", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Requesting_cuda_without_cuda_is_one_clear_error()
    {
        if (TorchRuntime.CudaAvailable)
            return; // this machine has a GPU: the error path cannot be reached here
        var e = Assert.Throws<LibTorchLoadException>(() => TorchRuntime.Initialize("cuda"));
        Assert.Contains("CUDA is not available", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", e.Message, StringComparison.Ordinal);
    }
}
