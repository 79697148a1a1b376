using Lora.Modules;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Tuners.LoRA;

/// <summary>
/// PEFT's <c>add_weighted_adapter</c> for LoRA on linear layers: a new adapter whose update combines existing ones.
/// <list type="bullet">
/// <item><c>cat</c> (exact): rank Σrᵢ, A = [A₁; A₂; …], B = [w₁s₁B₁ | w₂s₂B₂ | …], scale 1, so ΔW = Σ wᵢ·ΔWᵢ.</item>
/// <item><c>linear</c> (PEFT's approximation, equal ranks only): A = Σ √wᵢ·sᵢ·Aᵢ, B = Σ √wᵢ·Bᵢ, scale 1.</item>
/// </list>
/// </summary>
public static class AdapterCombination
{
    public static void AddWeightedAdapter(this nn.Module model, string newName, IReadOnlyList<(string Adapter, double Weight)> parts, string combination = "cat")
    {
        if (parts.Count == 0)
            throw new LoraException("add_weighted_adapter needs at least one adapter.");
        if (combination is not ("cat" or "linear"))
            throw new LoraException($"combination '{combination}' is not supported (use cat or linear).");
        var layers = model.named_modules().Select(m => m.module).OfType<LinearLayer>().Where(l => parts.Any(p => l.HasAdapter(p.Adapter))).ToList();
        if (layers.Count == 0)
            throw new LoraException($"no layer has the adapters {string.Join(", ", parts.Select(p => p.Adapter))}.");

        using var noGrad = no_grad();
        foreach (var layer in layers)
        {
            if (!parts.All(p => layer.HasAdapter(p.Adapter)))
                throw new LoraException($"adapters {string.Join(", ", parts.Select(p => p.Adapter))} do not all target the same layers; combine adapters with the same target_modules.");
            var sources = parts.Select(p => (Adapter: layer.Adapter(p.Adapter) as LoraAdapter ?? throw new LoraException($"adapter '{p.Adapter}' is not a LoRA adapter; only LoRA adapters can be combined."), p.Weight)).ToList();
            if (sources.Any(s => s.Adapter.UseDora))
                throw new LoraException("DoRA adapters cannot be combined.");
            var rank = combination == "cat" ? sources.Sum(s => s.Adapter.Rank) : sources[0].Adapter.Rank;
            if (combination == "linear" && sources.Any(s => s.Adapter.Rank != rank))
                throw new LoraException("linear combination needs adapters of equal rank; use cat.");

            var first = sources[0].Adapter;
            var combined = new LoraAdapter(layer.InFeatures, layer.OutFeatures, rank, alpha: rank, device: first.LoraA.weight!.device, dtype: first.LoraA.weight.dtype);
            using var scope = NewDisposeScope();
            Tensor a, b;
            if (combination == "cat")
            {
                a = cat(sources.Select(s => s.Adapter.LoraA.weight!).ToArray(), 0);
                b = cat(sources.Select(s => s.Adapter.LoraB.weight! * (s.Weight * s.Adapter.Scaling)).ToArray(), 1);
            }
            else
            {
                a = sources.Select(s => s.Adapter.LoraA.weight! * (Math.Sqrt(s.Weight) * s.Adapter.Scaling)).Aggregate((x, y) => x + y);
                b = sources.Select(s => s.Adapter.LoraB.weight! * Math.Sqrt(s.Weight)).Aggregate((x, y) => x + y);
            }

            combined.LoraA.weight!.copy_(a);
            combined.LoraB.weight!.copy_(b);
            layer.AddAdapter(newName, combined);
        }
    }
}
