using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// Everything the emitter needs for one <c>[Lora]</c> model: strings, ints, bools and equatable arrays only (no
/// symbols, syntax, locations or compilation), so the incremental pipeline caches it by value.
/// </summary>
/// <param name="Hierarchy">Where the partial class lives.</param>
/// <param name="BaseTypeName">The base model type, global::-qualified.</param>
/// <param name="Plans">One per <c>[Lora]</c>, in declaration order.</param>
/// <param name="Constructors">Base constructors to forward (empty when the class declares its own).</param>
/// <param name="FromPretrainedConfigType">The config type of the base constructor <c>(TConfig, ScalarType, Device?)</c>
/// that <c>FromPretrained</c> calls; null when the base has none (then no <c>FromPretrained</c> is emitted).</param>
/// <param name="FromPretrainedHidesBase">True when a base type already declares <c>FromPretrained(string, ScalarType, Device?)</c>.</param>
internal sealed record LoraModelSpec(
    HierarchyInfo Hierarchy,
    string BaseTypeName,
    EquatableArray<LoraPlanSpec> Plans,
    EquatableArray<ConstructorSpec> Constructors,
    string? FromPretrainedConfigType,
    bool FromPretrainedHidesBase);
