using Lora;
using Lora.Models;

namespace Demo;

// A full-path regex naming a layer index: only layer 0's q_proj/v_proj (checked per index at run time), and a
// second adapter restricted with LayersToTransform.
[Lora(R = 8, Alpha = 16, Targets = @"model\.layers\.0\.self_attn\.(q_proj|v_proj)")]
[Lora(R = 4, Alpha = 4, Targets = "o_proj", AdapterName = "late", LayersToTransform = [1, 2])]
public partial class FirstLayerLora : LlamaForCausalLM
{
}
