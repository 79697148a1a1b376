using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>A base-class constructor the generated class forwards to (emitted only when the user declared none).</summary>
internal sealed record ConstructorSpec(EquatableArray<ParameterSpec> Parameters, string XmlCref);

/// <summary>A parameter as C# text: modifiers (<c>params</c>, <c>ref</c>...), global::-qualified type, name, default.</summary>
internal sealed record ParameterSpec(string Modifiers, string Type, string Name, string? DefaultValue);
