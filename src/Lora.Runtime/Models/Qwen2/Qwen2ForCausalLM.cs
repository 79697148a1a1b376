using Lora.Quantization;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Qwen2 / Qwen2.5 causal LM: the Llama module tree with bias on q/k/v projections (same keys:
/// <c>model.layers.{i}.self_attn.q_proj.bias</c>, ...), usually tied embeddings.
/// </summary>
public class Qwen2ForCausalLM : LlamaForCausalLM
{
    public Qwen2ForCausalLM(Qwen2Config config, ScalarType dtype = ScalarType.Float32, torch.Device? device = null)
        : base(config, dtype, device)
    {
        Config = config;
    }

    public override Qwen2Config Config { get; }

    /// <summary>Loads a Qwen2 checkpoint directory; see <see cref="CausalLM.FromPretrained"/>.</summary>
    public static new Qwen2ForCausalLM FromPretrained(string directory, ScalarType dtype = ScalarType.Float32, torch.Device? device = null, QuantizationConfig? quantization = null) =>
        FromPretrained<Qwen2ForCausalLM>(directory, dtype, device, quantization);
}
