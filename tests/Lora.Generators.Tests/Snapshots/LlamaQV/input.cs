using Lora;
using Lora.Models;

namespace Demo;

[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj", Dropout = 0.05)]
public partial class CodeLlamaLora : LlamaForCausalLM
{
}
