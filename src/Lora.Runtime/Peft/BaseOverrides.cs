using System.Runtime.CompilerServices;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// Base-model parameters an adapter replaced when it was loaded (its trained biases or modules_to_save), with the
/// original values, so that disabling the adapters shows the base model again and removing the adapter restores it
/// (PEFT keeps the original module beside a trainable copy for the same reason).
/// </summary>
internal static class BaseOverrides
{
    private static readonly ConditionalWeakTable<nn.Module, Dictionary<string, List<(TorchSharp.Modules.Parameter Parameter, Tensor Original)>>> Table = new();

    /// <summary>Records the current value of <paramref name="parameter"/> before adapter <paramref name="adapterName"/> overwrites it.</summary>
    public static void Remember(nn.Module model, string adapterName, TorchSharp.Modules.Parameter parameter)
    {
        var byAdapter = Table.GetOrCreateValue(model);
        if (!byAdapter.TryGetValue(adapterName, out var list))
            byAdapter[adapterName] = list = [];
        list.Add((parameter, parameter.detach().clone().DetachFromDisposeScope()));
    }

    /// <summary>Swaps the current and the original values of every overridden parameter (disable ↔ enable).</summary>
    public static void Swap(nn.Module model)
    {
        if (!Table.TryGetValue(model, out var byAdapter))
            return;
        using var noGrad = no_grad();
        foreach (var (parameter, original) in byAdapter.Values.SelectMany(l => l))
        {
            using var current = parameter.detach().clone();
            parameter.copy_(original);
            original.copy_(current);
        }
    }

    /// <summary>Puts the originals back (the adapter is removed).</summary>
    public static void Restore(nn.Module model, string adapterName)
    {
        if (!Table.TryGetValue(model, out var byAdapter) || !byAdapter.Remove(adapterName, out var list))
            return;
        using var noGrad = no_grad();
        foreach (var (parameter, original) in list)
        {
            parameter.copy_(original);
            original.Dispose();
        }
    }

    /// <summary>Keeps the current values for good (merge-and-unload).</summary>
    public static void Forget(nn.Module model)
    {
        if (!Table.TryGetValue(model, out var byAdapter))
            return;
        foreach (var (_, original) in byAdapter.Values.SelectMany(l => l))
            original.Dispose();
        Table.Remove(model);
    }
}
