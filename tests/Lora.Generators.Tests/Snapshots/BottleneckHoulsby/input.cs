using Lora;
using Lora.Models;
using Lora.Tuners.Bottleneck;

namespace Demo;

// Houlsby bottleneck adapters (AdapterHub's double_seq_bn): the slots after the attention and after the MLP of every
// decoder block, which Placement chooses.
[BottleneckAdapter(Size = 64, Placement = BottleneckPlacement.Houlsby)]
public partial class LlamaHoulsby : LlamaForCausalLM
{
}
