using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// A prompt-learning adapter as <see cref="CausalLM.Forward"/> sees it: PEFT's <c>PeftModelForCausalLM.forward</c>
/// (<c>src/peft/peft_model.py</c>), which changes what a transformers model is given rather than its layers: virtual
/// token embeddings before the input's (prompt tuning, P-tuning) or key/value prefixes in every layer's cache (prefix
/// tuning). It runs the pass itself through <see cref="CausalLM.Decode"/>; the caller's attention mask, positions and
/// cache length never count the virtual positions (<see cref="KvCache.VirtualTokens"/> remembers them).
/// </summary>
public interface IPromptLearner
{
    /// <summary>Whether an adapter applies now (one is active and adapters are not disabled).</summary>
    bool IsActive { get; }

    /// <summary>Logits of <paramref name="model"/> for the inputs with the active adapter's virtual tokens; arguments
    /// as <see cref="CausalLM.Forward"/>.</summary>
    Tensor Forward(CausalLM model, Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache);
}
