using Lora;
using Lora.Tuners.LoRA;
using Lora.Models;

namespace Demo;

// LoRA on the token embedding and the attention projections; lm_head trains in full and is saved with the adapter.
[Lora(R = 4, Alpha = 8, Targets = "embed_tokens|q_proj|v_proj", ModulesToSave = new[] { "lm_head" }, Bias = LoraBias.All)]
public partial class EmbedLora : LlamaForCausalLM
{
}
