using Lora;
using Lora.Models;

namespace Demo;

// PEFT's "all-linear" spelled as a regex: every projection, not the output head.
[Lora(R = 16, Alpha = 32, Targets = "(q|k|v|o|gate|up|down)_proj", UseRsLora = true, Init = Lora.Tuners.LoRA.LoraInit.Gaussian, ModulesToSave = ["lm_head"])]
public partial class QwenAllLinear : Qwen2ForCausalLM
{
}
