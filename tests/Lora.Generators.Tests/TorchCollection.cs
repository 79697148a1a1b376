namespace Lora.Generators.Tests;

/// <summary>Tests that run real TorchSharp models: some compare values made after <c>torch.manual_seed</c>, and torch's
/// global generator is shared by the whole process, so they run one at a time, after the other tests.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection
{
    public const string Name = "Torch (global random generator)";
}
