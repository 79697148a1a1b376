using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>
/// Everything the emitter needs for one model class with plan attributes: strings, ints, bools and equatable arrays
/// only (no symbols, syntax, locations or compilation), so the incremental pipeline caches it by value.
/// </summary>
/// <param name="Hierarchy">Where the partial class lives.</param>
/// <param name="BaseTypeName">The base model type, global::-qualified.</param>
/// <param name="Plans">One per plan attribute, in declaration order.</param>
/// <param name="Constructors">Base constructors to forward (empty when the class declares its own).</param>
/// <param name="FromPretrainedConfigType">The config type of the constructor <c>(TConfig, ScalarType, Device?)</c> that
/// <c>FromPretrained</c> calls; null when there is none (then no <c>FromPretrained</c> is emitted).</param>
/// <param name="FromPretrainedHidesBase">True when a base type already declares
/// <c>FromPretrained(string, ScalarType, Device?, QuantizationConfig?)</c> (every runtime architecture does).</param>
/// <param name="ModulesToSave">The <c>ModulesToSave</c> of every plan, in declaration order, distinct: left unquantized
/// by <c>FromPretrained</c> (they are trained in full). Empty for an invalid plan.</param>
/// <param name="Quantize">The class's <c>[Quantize]</c>, or null: then <c>FromPretrained</c> loads dense unless asked
/// otherwise, and no <c>DeclaredQuantization</c> is emitted.</param>
/// <param name="Invalid">The ids of the diagnostics that make the plan invalid (<c>LORA0001, LORA0004</c>), or null:
/// then every generated member keeps its signature and throws naming them, so user code calling them compiles and
/// the LORA errors are the only ones.</param>
internal sealed record PeftModelSpec(
    HierarchyInfo Hierarchy,
    string BaseTypeName,
    EquatableArray<PlanSpec> Plans,
    EquatableArray<ConstructorSpec> Constructors,
    string? FromPretrainedConfigType,
    bool FromPretrainedHidesBase,
    EquatableArray<string> ModulesToSave,
    QuantizeSpec? Quantize,
    string? Invalid);
