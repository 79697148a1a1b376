namespace Lora.Adapters;

/// <summary>A layer that can carry named adapters (linear layers, embeddings): the operations a model applies to
/// all of them at once (<see cref="LoraModelExtensions"/>).</summary>
public interface IAdapterHost
{
    IEnumerable<string> AdapterNames { get; }

    IReadOnlyList<string> ActiveAdapters { get; }

    IReadOnlyList<string> MergedAdapters { get; }

    bool AdaptersDisabled { get; }

    bool HasAdapter(string name);

    void SetActiveAdapters(IEnumerable<string> names);

    void SetAdaptersDisabled(bool disabled);

    void Merge(bool safe = true);

    void Unmerge();

    /// <summary>Removes an adapter, unmerging it first.</summary>
    void DeleteAdapter(string name);

    /// <summary>Removes an adapter as is (a merged update stays in the weights).</summary>
    void Remove(string name);
}
