using Lora;
using Lora.Models;

namespace Demo.Gpt2;

[Lora(R = 4, Alpha = 8, Targets = "c_attn", Bias = Lora.Tuners.LoRA.LoraBias.LoraOnly)]
public partial class Gpt2Lora : Gpt2LMHeadModel
{
}
