using Lora;
using Lora.Models;
using Lora.Quantization;

namespace Demo;

// LoRA on an LLM.int8() base; the MLP's gate and up projections train in full (modules_to_save), so FromPretrained
// leaves them dense, as it does o_proj (SkipModules) and the output head.
[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj", ModulesToSave = new[] { "gate_proj|up_proj" })]
[Quantize(QuantizationType.Int8, Int8Threshold = 4.0, SkipModules = "o_proj")]
public partial class Int8Lora : LlamaForCausalLM
{
}
