using Lora.Tuners.Bottleneck;
using Lora.Tuners.IA3;
using Lora.Tuners.LoRA;
using Lora.Tuners.PrefixTuning;
using Lora.Tuners.PromptTuning;
using Lora.Tuners.PTuning;

namespace Lora.Peft;

/// <summary>
/// The PEFT methods this runtime implements, one line each: <c>adapter_config.json</c> dispatches here on
/// <c>peft_type</c>, and so do injection, saving and training. A new method is a folder under <c>Tuners/</c> and a
/// line in <see cref="All"/> (docs/architecture.md).
/// </summary>
public static class PeftMethods
{
    /// <summary>Every method, by <c>peft_type</c>.</summary>
    public static IReadOnlyList<PeftMethod> All { get; } =
    [
        LoraMethod.Instance,
        Ia3Method.Instance,
        PrefixTuningMethod.Instance,
        PromptTuningMethod.Instance,
        PTuningMethod.Instance,
        BottleneckMethod.Instance,
    ];

    /// <summary>The method of <c>peft_type</c> <paramref name="peftType"/>, or null.</summary>
    public static PeftMethod? Find(string peftType) => All.FirstOrDefault(m => m.PeftType == peftType);

    /// <summary>The method <paramref name="config"/> belongs to.</summary>
    public static PeftMethod For(PeftConfig config) =>
        Find(config.PeftType) ?? throw new LoraException($"peft_type {config.PeftType} has no implementation here (have: {string.Join(", ", All.Select(m => m.PeftType))}).");
}
