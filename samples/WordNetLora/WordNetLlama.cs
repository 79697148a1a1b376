using Lora;
using Lora.Models;

namespace WordNetLora;

/// <summary>
/// The adapter plan, as C# the compiler checks: LoRA of rank 16 on every linear layer of the built-in Llama. The
/// generator resolves the targets against <see cref="LlamaForCausalLM"/>'s module tree (a typo such as
/// <c>"q_projj"</c> is error LORA0001), and the build checks them against the embedded checkpoint declared in
/// WordNetLora.csproj (<c>&lt;LoraCheckpoint Include="../models/wordnet-llama" /&gt;</c>: every target's weight must
/// be there with a 2-D shape, LORA0011/LORA0012). It generates <c>FromPretrained</c>, <c>InjectAdapters</c>,
/// <c>AdapterTargets</c> and <c>PrintTrainableParameters</c>.
/// </summary>
[Lora(R = 16, Alpha = 32, Targets = "q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj")]
public partial class WordNetLlama : LlamaForCausalLM
{
}
