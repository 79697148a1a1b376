using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// PEFT's <c>prepare_model_for_kbit_training</c> (<c>peft/utils/other.py</c>), which the <see cref="Training.Trainer"/>
/// applies to every quantized model before training:
/// <list type="number">
/// <item>every parameter is frozen (the trainer then marks the adapter's trainable);</item>
/// <item>every fp16/bf16 parameter that is not part of a quantized weight — norms, embeddings, the output head,
/// biases, adapters — is cast to fp32 (the quantized buffers keep their dtypes; the 4-bit matmuls still run in the
/// compute dtype);</item>
/// <item>input gradients for gradient checkpointing (<c>enable_input_require_grads</c>) need no hook here:
/// <see cref="Training.GradientCheckpoint"/> marks each checkpointed block's input as requiring grad.</item>
/// </list>
/// </summary>
public static class KbitTraining
{
    /// <summary>Applies the preparation to <paramref name="model"/> (a no-op cast for an fp32 model).</summary>
    public static void Prepare(CausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Quantization is null)
            throw new LoraException("k-bit training preparation is for quantized models; this one is dense.");
        foreach (var p in model.parameters())
            p.requires_grad = false;
        if (model.parameters().Any(p => p.dtype is ScalarType.Float16 or ScalarType.BFloat16))
            model.to(ScalarType.Float32);
    }
}
