using Lora;
using Lora.Models;

namespace Demo;

// Prefix tuning with PEFT's reparameterisation MLP while training (Li & Liang); no layer targets: the prefix encoder is
// attached to the model and its prefixes enter every layer's attention through the KV cache.
[PrefixTuning(VirtualTokens = 20, Projection = true, EncoderHiddenSize = 512)]
public partial class LlamaPrefix : LlamaForCausalLM
{
}
