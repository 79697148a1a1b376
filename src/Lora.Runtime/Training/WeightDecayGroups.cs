using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// transformers' <c>get_decay_parameter_names</c>: trainable parameters split into those AdamW decays and those it
/// must not — biases (any parameter named <c>bias</c>, including <c>lora_B.bias</c>) and the weights of norm layers
/// (<see cref="RmsNorm"/>, <c>LayerNorm</c>). Everything else (linear and embedding weights, LoRA A/B, DoRA
/// magnitudes) decays.
/// </summary>
public static class WeightDecayGroups
{
    /// <summary>(decayed, not decayed) trainable parameters, each in <c>named_parameters()</c> order.</summary>
    public static (IReadOnlyList<(string Name, Parameter Parameter)> Decay, IReadOnlyList<(string Name, Parameter Parameter)> NoDecay) Split(nn.Module model)
    {
        var normPrefixes = model.named_modules()
            .Where(m => m.module is RmsNorm or LayerNorm)
            .Select(m => m.name.Length == 0 ? string.Empty : m.name + ".")
            .ToList();
        var decay = new List<(string, Parameter)>();
        var noDecay = new List<(string, Parameter)>();
        foreach (var (name, parameter) in model.named_parameters())
        {
            if (!parameter.requires_grad)
                continue;
            var leaf = name[(name.LastIndexOf('.') + 1)..];
            var owner = name[..(name.Length - leaf.Length)];
            var exempt = leaf == "bias" || normPrefixes.Contains(owner);
            (exempt ? noDecay : decay).Add((name, parameter));
        }

        return (decay, noDecay);
    }
}
