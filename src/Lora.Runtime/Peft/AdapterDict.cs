using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// The named adapters of one layer, registered as child modules so <c>named_parameters()</c> shows them as
/// <c>{layer}.adapters.{name}.lora_A.weight</c>. Unlike TorchSharp's <c>ModuleDict</c>, which registers its entries
/// once, adapters can be added and removed at any time.
/// </summary>
public sealed class AdapterDict<TAdapter> : nn.Module, IAdapterDict
    where TAdapter : nn.Module
{
    public AdapterDict()
        : base("AdapterDict")
    {
    }

    public int Count => _internal_submodules.Count;

    public IEnumerable<string> Names => _internal_submodules.Keys;

    public bool ContainsKey(string name) => _internal_submodules.ContainsKey(name);

    public bool TryGetValue(string name, out TAdapter adapter)
    {
        if (_internal_submodules.TryGetValue(name, out var module) && module is TAdapter a)
        {
            adapter = a;
            return true;
        }

        adapter = null!;
        return false;
    }

    public void Add(string name, TAdapter adapter) => register_module(name, adapter);

    public void Remove(string name) => _internal_submodules.Remove(name);
}

/// <summary>Marks the module that holds a layer's adapters, so walks over the base model can skip what is inside.</summary>
public interface IAdapterDict
{
}
