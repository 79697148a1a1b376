using System.CommandLine;

namespace Lora.Cli.Commands;

/// <summary>Options shared by several commands, so they are spelled and described once.</summary>
internal static class CommonOptions
{
    public static Option<bool> Json() => new("--json") { Description = "Print one JSON object on stdout and nothing else." };

    public static Option<string> Device() => new("--device")
    {
        Description = "auto (CUDA if available, else CPU), cpu, cuda or cuda:N.",
        DefaultValueFactory = _ => "auto",
    };

    public static Option<string> Model() => new("--model")
    {
        Description = "Hugging Face model directory (config.json + model.safetensors or a sharded index).",
        Required = true,
    };

    public static Option<string?> Adapter() => new("--adapter") { Description = "Adapter directory of any method: PEFT (adapter_config.json + adapter_model.safetensors, by peft_type) or an AdapterHub bottleneck adapter (adapter.safetensors)." };

    public static Option<bool> Merge() => new("--merge") { Description = "Merge the adapter into the base weights before running." };

    /// <summary><c>--dtype</c>: auto (bf16 on CUDA, where bf16 matmuls run 4–5× faster than fp32; fp32 on the CPU,
    /// whose bf16 kernels are slow), fp32, bf16 or fp16.</summary>
    public static Option<string> DType(string defaultValue = "auto") => new("--dtype")
    {
        Description = "Model dtype: auto (bf16 on CUDA, fp32 on the CPU), fp32, bf16 or fp16.",
        DefaultValueFactory = _ => defaultValue,
    };
}
