namespace Lora.Generators.Model;

/// <summary>
/// One step from a module to a submodule: the C# field (<see cref="Member"/>) and its registered Hugging Face name
/// (<see cref="HfName"/>), or an index into a <c>ModuleList&lt;T&gt;</c> (<see cref="IsListIndex"/>, names empty).
/// </summary>
internal sealed record AccessStep(string Member, string HfName, bool IsListIndex, bool IsNullable);
