using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// A <c>[Quantize]</c> attribute as C# text: its type, the constructor argument and the named arguments as written,
/// so the emitted <c>DeclaredQuantization</c> re-creates the attribute and calls its <c>ToConfig()</c> (the generator
/// never mirrors <c>QuantizationConfig</c>). Literals are empty for an invalid plan (only the member's signature is
/// emitted then).
/// </summary>
internal sealed record QuantizeSpec(
    string AttributeType,
    string TypeLiteral,
    EquatableArray<ArgumentSpec> Arguments);
