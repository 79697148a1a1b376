using Lora;
using Lora.Models;
using Lora.Quantization;
using static TorchSharp.torch;

namespace Demo;

// QLoRA: LoRA on every projection ("all-linear" spelled as a regex) of an NF4 base with double quantization and
// bf16 compute.
[Lora(R = 16, Alpha = 32, Targets = "(q|k|v|o|gate|up|down)_proj")]
[Quantize(QuantizationType.Nf4, DoubleQuant = true, Compute = ScalarType.BFloat16)]
public partial class QloraLlama : LlamaForCausalLM
{
}
