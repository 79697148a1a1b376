using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Runtime.CompilerServices;
using System.Threading;
using Lora.Generators.Analysis;
using Lora.Generators.Helpers;
using Lora.Generators.Model;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Lora.Generators;

public sealed partial class LoraModelGenerator
{
    /// <summary>Symbols → <see cref="LoraModelSpec"/>. Returns null for an invalid plan (the analyzers report it).</summary>
    internal static class Parser
    {
        private static readonly SymbolDisplayFormat TypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        public static LoraModelSpec? Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            if (context.TargetSymbol is not INamedTypeSymbol type)
                return null;
            var symbols = LoraSymbols.Create(context.SemanticModel.Compilation);
            if (symbols.LoraAttribute is null)
                return null;

            // A class split over several partial declarations with [Lora] on more than one is handled once, from the
            // declaration carrying the first attribute.
            var attributes = LoraModelValidator.LoraAttributes(type, symbols);
            var owner = attributes.FirstOrDefault()?.ApplicationSyntaxReference?.GetSyntax(cancellationToken)?.Parent?.Parent;
            if (owner is not null && owner != context.TargetNode)
                return null;

            cancellationToken.ThrowIfCancellationRequested();
            var validation = LoraModelValidator.Validate(type, symbols, cancellationToken);
            if (!validation.IsValidDeclaration)
                return null;

            // An invalid plan still gets the forwarding constructors (they depend only on the base type), so the
            // only errors the user sees are the analyzers' LORA diagnostics, not CS7036 from a missing constructor.
            cancellationToken.ThrowIfCancellationRequested();
            var plans = validation.IsValid
                ? validation.Plans.Select(PlanSpec).ToEquatableArray()
                : EquatableArray<LoraPlanSpec>.Empty;
            var baseInfo = BaseTypeInfo.Get(type.BaseType!, symbols);
            var declaresConstructors = type.InstanceConstructors.Any(c => !c.IsImplicitlyDeclared);
            var constructors = declaresConstructors ? EquatableArray<ConstructorSpec>.Empty : baseInfo.Constructors;
            var fromPretrainedConfigType = constructors.Length > 0 ? baseInfo.ForwardedFromPretrainedConfigType
                : declaresConstructors ? FromPretrainedConfigType(type.InstanceConstructors.Where(c => !c.IsImplicitlyDeclared), symbols)
                : null;
            return new LoraModelSpec(
                Hierarchy(type),
                baseInfo.DisplayName,
                plans,
                constructors,
                fromPretrainedConfigType,
                baseInfo.HidesFromPretrained);
        }

        /// <summary>The target specs of a resolution, built once per resolution (resolutions are shared by every
        /// model with the same base type and plan, see <see cref="ModuleTree.Resolve"/>).</summary>
        private static readonly ConditionalWeakTable<TargetResolution, TargetSpecs> TargetSpecsCache = new();

        private sealed class TargetSpecs
        {
            public TargetSpecs(TargetResolution resolution)
            {
                Targets = resolution.Targets.Select(t => new LoraTargetSpec(
                    t.Node.PathTemplate,
                    t.Node.Steps,
                    t.RuntimeCheck,
                    t.LayerOrdinal,
                    t.Node.Kind == ModuleKind.Conv1D,
                    t.Node.Kind == ModuleKind.Embedding)).ToEquatableArray();
                LeafNames = resolution.LeafNames.ToEquatableArray();
            }

            public EquatableArray<LoraTargetSpec> Targets { get; }

            public EquatableArray<string> LeafNames { get; }
        }

        private static LoraPlanSpec PlanSpec(ValidatedPlan plan)
        {
            var a = plan.Arguments;
            var resolution = plan.Resolution!;
            var attributeType = a.Data.AttributeClass!;
            var specs = TargetSpecsCache.GetValue(resolution, static r => new TargetSpecs(r));
            return new LoraPlanSpec(
                a.AdapterName,
                a.R,
                DoubleLiteral(a.Alpha),
                DoubleLiteral(a.Dropout),
                EnumMember(attributeType, "Bias", a.Bias),
                a.UseRsLora,
                a.UseDora,
                EnumMember(attributeType, "Init", a.Init),
                a.Targets!,
                a.ModulesToSave.ToEquatableArray(),
                a.LayersToTransform is not null,
                (a.LayersToTransform ?? new List<int>()).Distinct().OrderBy(i => i).ToEquatableArray(),
                specs.Targets,
                specs.LeafNames);
        }

        /// <summary>Enum member texts already formatted, per attribute type (a metadata symbol: shared by compilations
        /// over the same references).</summary>
        private static readonly ConditionalWeakTable<INamedTypeSymbol, ConcurrentDictionary<string, string>> EnumMembers = new();

        /// <summary>The enum member name of property <paramref name="property"/>'s value (e.g. <c>LoraOnly</c>).</summary>
        private static string EnumMember(INamedTypeSymbol attributeType, string property, int value)
        {
            var cache = EnumMembers.GetValue(attributeType, static _ => new ConcurrentDictionary<string, string>(System.StringComparer.Ordinal));
            var key = property + "=" + value.ToString(CultureInfo.InvariantCulture);
            if (cache.TryGetValue(key, out var text))
                return text;
            return cache.GetOrAdd(key, FormatEnumMember(attributeType, property, value));
        }

        private static string FormatEnumMember(INamedTypeSymbol attributeType, string property, int value)
        {
            var enumType = attributeType.GetMembers(property).OfType<IPropertySymbol>().FirstOrDefault()?.Type as INamedTypeSymbol;
            var member = enumType?.GetMembers().OfType<IFieldSymbol>().FirstOrDefault(f => f.HasConstantValue && System.Convert.ToInt32(f.ConstantValue, CultureInfo.InvariantCulture) == value);
            return member is null ? $"({enumType?.ToDisplayString(TypeFormat) ?? "int"}){value}" : $"{enumType!.ToDisplayString(TypeFormat)}.{member.Name}";
        }

        private static string DoubleLiteral(double value)
        {
            var text = value.ToString("R", CultureInfo.InvariantCulture);
            return text.IndexOfAny(new[] { '.', 'E', 'e' }) >= 0 ? text : text + ".0";
        }

        private static HierarchyInfo Hierarchy(INamedTypeSymbol type)
        {
            var containing = new List<string>();
            for (var outer = type.ContainingType; outer is not null; outer = outer.ContainingType)
                containing.Insert(0, "partial " + Keyword(outer) + " " + NameWithTypeParameters(outer));
            var ns = type.ContainingNamespace.IsGlobalNamespace ? string.Empty : type.ContainingNamespace.ToDisplayString();
            var metadataName = (ns.Length > 0 ? ns + "." : string.Empty)
                + string.Join("+", Enumerable.Reverse(ContainingChain(type)).Select(t => t.MetadataName));
            return new HierarchyInfo(
                metadataName.Replace('`', '_'),
                ns,
                containing.ToEquatableArray(),
                Keyword(type),
                NameWithTypeParameters(type),
                type.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat));
        }

        private static IEnumerable<INamedTypeSymbol> ContainingChain(INamedTypeSymbol type)
        {
            for (var t = type; t is not null; t = t.ContainingType)
                yield return t;
        }

        private static string Keyword(INamedTypeSymbol type) =>
            type.IsRecord ? (type.TypeKind == TypeKind.Struct ? "record struct" : "record") : type.TypeKind == TypeKind.Struct ? "struct" : type.TypeKind == TypeKind.Interface ? "interface" : "class";

        private static string NameWithTypeParameters(INamedTypeSymbol type) =>
            type.TypeParameters.Length == 0 ? type.Name : type.Name + "<" + string.Join(", ", type.TypeParameters.Select(p => p.Name)) + ">";

        /// <summary>What a model takes from its base type alone (its display name, the public constructors a class that
        /// declares none forwards to, the <c>FromPretrained</c> those allow, whether a base already declares one),
        /// computed once per base type: for the built-in architectures (metadata) once per process.</summary>
        private sealed class BaseTypeInfo
        {
            private static readonly ConditionalWeakTable<INamedTypeSymbol, BaseTypeInfo> Cache = new();
            private static readonly object CacheLock = new();

            private readonly INamedTypeSymbol?[] _builtWith;

            private BaseTypeInfo(INamedTypeSymbol baseType, LoraSymbols symbols)
            {
                _builtWith = BuiltWithOf(symbols);
                DisplayName = baseType.ToDisplayString(TypeFormat);
                var publicConstructors = baseType.InstanceConstructors.Where(c => c.DeclaredAccessibility == Accessibility.Public).ToList();
                Constructors = ForwardedConstructors(publicConstructors).ToEquatableArray();
                ForwardedFromPretrainedConfigType = FromPretrainedConfigType(publicConstructors, symbols);
                HidesFromPretrained = DeclaresFromPretrained(baseType, symbols);
            }

            public string DisplayName { get; }

            public EquatableArray<ConstructorSpec> Constructors { get; }

            public string? ForwardedFromPretrainedConfigType { get; }

            public bool HidesFromPretrained { get; }

            public static BaseTypeInfo Get(INamedTypeSymbol baseType, LoraSymbols symbols)
            {
                lock (CacheLock)
                {
                    if (Cache.TryGetValue(baseType, out var cached) && cached.BuiltWith(symbols))
                        return cached;
                }

                var info = new BaseTypeInfo(baseType, symbols);
                lock (CacheLock)
                {
                    Cache.Remove(baseType);
                    Cache.Add(baseType, info);
                }

                return info;
            }

            private bool BuiltWith(LoraSymbols symbols)
            {
                var current = BuiltWithOf(symbols);
                for (var i = 0; i < current.Length; i++)
                {
                    if (!SymbolEqualityComparer.Default.Equals(current[i], _builtWith[i]))
                        return false;
                }

                return true;
            }

            private static INamedTypeSymbol?[] BuiltWithOf(LoraSymbols symbols) => new[] { symbols.ModelConfig, symbols.ScalarType, symbols.Device };
        }

        /// <summary>The base's public constructors, forwarded when the class declares none of its own.</summary>
        private static IEnumerable<ConstructorSpec> ForwardedConstructors(IEnumerable<IMethodSymbol> publicBaseConstructors)
        {
            foreach (var constructor in publicBaseConstructors)
            {
                var parameters = constructor.Parameters.Select(p => new ParameterSpec(
                    Modifiers(p),
                    p.Type.ToDisplayString(TypeFormat),
                    EscapeIdentifier(p.Name),
                    p.HasExplicitDefaultValue ? DefaultValue(p) : null)).ToEquatableArray();
                var cref = constructor.ToDisplayString(SymbolDisplayFormat.CSharpErrorMessageFormat);
                yield return new ConstructorSpec(parameters, cref);
            }
        }

        private static string Modifiers(IParameterSymbol p) =>
            (p.IsParams ? "params " : string.Empty) + p.RefKind switch
            {
                RefKind.Ref => "ref ",
                RefKind.Out => "out ",
                RefKind.In => "in ",
                _ => string.Empty,
            };

        public static string EscapeIdentifier(string name) =>
            SyntaxFacts.GetKeywordKind(name) != SyntaxKind.None ? "@" + name : name;

        private static string DefaultValue(IParameterSymbol p)
        {
            var value = p.ExplicitDefaultValue;
            var type = p.Type is INamedTypeSymbol { OriginalDefinition.SpecialType: SpecialType.System_Nullable_T } nullable ? nullable.TypeArguments[0] : p.Type;
            if (value is null)
                return p.Type.IsValueType && p.Type.OriginalDefinition.SpecialType != SpecialType.System_Nullable_T ? "default" : "null";
            if (type.TypeKind == TypeKind.Enum)
            {
                var member = type.GetMembers().OfType<IFieldSymbol>().FirstOrDefault(f => f.HasConstantValue && Equals(f.ConstantValue, value));
                var enumName = type.ToDisplayString(TypeFormat);
                return member is null ? $"({enumName})({SymbolDisplay.FormatPrimitive(value, quoteStrings: false, useHexadecimalNumbers: false)})" : enumName + "." + member.Name;
            }

            var text = SymbolDisplay.FormatPrimitive(value, quoteStrings: true, useHexadecimalNumbers: false);
            return value switch
            {
                float => text + "F",
                double d when text.IndexOfAny(new[] { '.', 'E' }) < 0 && !double.IsNaN(d) && !double.IsInfinity(d) => text + "D",
                decimal => text + "M",
                long => text + "L",
                ulong => text + "UL",
                uint => text + "U",
                _ => text,
            };
        }

        /// <summary>The config type of a constructor <c>(TConfig : ModelConfig, ScalarType, Device?)</c> among those
        /// the class will have (its own, or the base's it forwards to), or null.</summary>
        private static string? FromPretrainedConfigType(IEnumerable<IMethodSymbol> candidates, LoraSymbols symbols)
        {
            foreach (var constructor in candidates)
            {
                var ps = constructor.Parameters;
                if (ps.Length == 3 && ps.All(p => p.RefKind == RefKind.None)
                    && LoraSymbols.DerivesFrom(ps[0].Type, symbols.ModelConfig)
                    && SymbolEqualityComparer.Default.Equals(ps[1].Type, symbols.ScalarType)
                    && SymbolEqualityComparer.Default.Equals(ps[2].Type, symbols.Device))
                    return ps[0].Type.WithNullableAnnotation(NullableAnnotation.NotAnnotated).ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            }

            return null;
        }

        /// <summary>True when <paramref name="baseType"/> or one of its bases declares <c>FromPretrained(string, ScalarType, Device?)</c>.</summary>
        private static bool DeclaresFromPretrained(INamedTypeSymbol baseType, LoraSymbols symbols)
        {
            for (INamedTypeSymbol? t = baseType; t is not null; t = t.BaseType)
            {
                foreach (var method in t.GetMembers("FromPretrained").OfType<IMethodSymbol>())
                {
                    var ps = method.Parameters;
                    if (method.IsStatic && method.TypeParameters.Length == 0 && ps.Length == 3
                        && ps[0].Type.SpecialType == SpecialType.System_String
                        && SymbolEqualityComparer.Default.Equals(ps[1].Type, symbols.ScalarType)
                        && SymbolEqualityComparer.Default.Equals(ps[2].Type, symbols.Device))
                        return true;
                }
            }

            return false;
        }
    }
}
