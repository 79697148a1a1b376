using Lora.Generators.Helpers;

namespace Lora.Generators.Model;

/// <summary>Where the partial class lives: namespace (empty for the global one), the enclosing types outermost
/// first (<c>"partial class Outer"</c>), the declaration keyword and name (with type parameters), and the
/// metadata name used for hint names.</summary>
internal sealed record HierarchyInfo(
    string MetadataName,
    string Namespace,
    EquatableArray<string> ContainingTypeDeclarations,
    string TypeKeyword,
    string TypeName,
    string FullyQualifiedName);
