using Lora;
using Lora.Models;
using Lora.Quantization;
using static TorchSharp.torch;

namespace Demo;

// QLoRA: LoRA on every linear layer but lm_head (PEFT's all-linear) of an NF4 base with double quantization and
// bf16 compute.
[Lora(R = 16, Alpha = 32, Targets = "all-linear")]
[Quantize(QuantizationType.Nf4, DoubleQuant = true, Compute = ScalarType.BFloat16)]
public partial class QloraLlama : LlamaForCausalLM
{
}
