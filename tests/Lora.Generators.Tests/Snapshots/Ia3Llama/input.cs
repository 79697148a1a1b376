using Lora;
using Lora.Models;

namespace Demo;

// IA3 as PEFT's default for Llama: vectors on k_proj, v_proj and down_proj, down_proj's scaling its input.
[IA3(Targets = "k_proj|v_proj|down_proj", FeedForward = "down_proj")]
public partial class LlamaIa3 : LlamaForCausalLM
{
}
