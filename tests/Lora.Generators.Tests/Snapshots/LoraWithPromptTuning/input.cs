using Lora;
using Lora.Models;

namespace Demo;

// A layer plan and a prompt-learning plan on one class: the LoRA adapter goes on its typed targets, the prompt-tuning
// encoder is attached to the model.
[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj")]
[PromptTuning(VirtualTokens = 8, AdapterName = "prompt")]
public partial class QwenLoraPrompt : Qwen2ForCausalLM
{
}
