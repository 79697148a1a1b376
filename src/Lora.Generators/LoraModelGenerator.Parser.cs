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
    /// <summary>Symbols → <see cref="PeftModelSpec"/> (invalid plans included, marked, so that their members keep their
    /// signatures; the analyzers report why).</summary>
    internal static class Parser
    {
        /// <summary><c>QuantizationConfig.OutputHeadName</c>: the module the runtime never quantizes.</summary>
        private const string OutputHeadName = "lm_head";

        private static readonly SymbolDisplayFormat TypeFormat = SymbolDisplayFormat.FullyQualifiedFormat
            .AddMiscellaneousOptions(SymbolDisplayMiscellaneousOptions.IncludeNullableReferenceTypeModifier);

        /// <summary>The spec of the class carrying the attribute(s), or null when nothing can be added to it (not partial,
        /// no runtime) or another of its plan attributes owns it (a class is handled once, from its first plan attribute
        /// of any method).</summary>
        public static PeftModelSpec? Parse(GeneratorAttributeSyntaxContext context, CancellationToken cancellationToken)
        {
            if (context.TargetSymbol is not INamedTypeSymbol type)
                return null;
            var symbols = LoraSymbols.Create(context.SemanticModel.Compilation);
            if (!symbols.HasRuntime)
                return null;

            var attributes = ModelValidator.PlanAttributes(type, symbols);
            if (attributes.IsEmpty)
                return null;
            var owner = attributes[0].Data.ApplicationSyntaxReference;
            if (owner is null || !context.Attributes.Any(a => a.ApplicationSyntaxReference is { } r && r.SyntaxTree == owner.SyntaxTree && r.Span == owner.Span))
                return null;

            cancellationToken.ThrowIfCancellationRequested();
            var validation = ModelValidator.Validate(type, symbols, cancellationToken);
            if (!validation.IsPartial)
                return null;

            // An invalid plan keeps every member's signature (bodies that throw), so the only errors the user sees are
            // the analyzers' LORA diagnostics, not CS1061/CS7036 from code that calls generated members.
            cancellationToken.ThrowIfCancellationRequested();
            var invalid = validation.IsValid ? null : string.Join(", ", validation.ErrorIds);
            var plans = validation.Plans.Select(p => PlanSpec(p, valid: invalid is null)).ToEquatableArray();
            var modulesToSave = invalid is null
                // The output head is never quantized (the runtime leaves it out), so it need not be skipped.
                ? validation.Plans.SelectMany(p => p.Arguments.ModulesToSave).Where(m => m != OutputHeadName).Distinct(System.StringComparer.Ordinal).ToEquatableArray()
                : EquatableArray<string>.Empty;
            var quantize = validation.Quantize is { } q ? QuantizeSpec(q, valid: invalid is null) : null;
            var baseInfo = BaseTypeInfo.Get(type.BaseType!, symbols);
            var declaresConstructors = type.InstanceConstructors.Any(c => !c.IsImplicitlyDeclared);
            var constructors = declaresConstructors ? EquatableArray<ConstructorSpec>.Empty : baseInfo.Constructors;
            var fromPretrainedConfigType = !validation.IsModel ? null
                : constructors.Length > 0 ? baseInfo.ForwardedFromPretrainedConfigType
                : declaresConstructors ? FromPretrainedConfigType(type.InstanceConstructors.Where(c => !c.IsImplicitlyDeclared), symbols)
                : null;
            return new PeftModelSpec(
                Hierarchy(type),
                baseInfo.DisplayName,
                plans,
                constructors,
                fromPretrainedConfigType,
                baseInfo.HidesFromPretrained,
                modulesToSave,
                quantize,
                invalid);
        }

        /// <summary><c>[Quantize]</c> as C# text: the attribute type, its constructor argument and its named arguments
        /// as written (formatted like a plan attribute's).</summary>
        private static QuantizeSpec QuantizeSpec(QuantizeArguments q, bool valid)
        {
            var attributeType = q.AttributeType;
            var name = AttributeNames.GetValue(attributeType, static t => new AttributeTypeNames(t.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat), ConfigTypeOf(t))).Type;
            if (!valid)
                return new QuantizeSpec(name, string.Empty, EquatableArray<ArgumentSpec>.Empty);
            var type = q.Type is { } t ? Literal(attributeType, "Type", t) : "default";
            return new QuantizeSpec(
                name,
                type,
                q.Named.Select(n => new ArgumentSpec(n.Key, Literal(attributeType, n.Key, n.Value))).ToEquatableArray());
        }

        /// <summary>The target specs of a resolution, built once per resolution (resolutions are shared by every
        /// model with the same base type and plan, see <see cref="ModuleTree.Resolve"/>).</summary>
        private static readonly ConditionalWeakTable<TargetResolution, TargetSpecs> TargetSpecsCache = new();

        private sealed class TargetSpecs
        {
            public TargetSpecs(TargetResolution resolution) =>
                Targets = resolution.Targets.Select(t => new TargetSpec(t.Node.PathTemplate, t.Node.Steps, t.RuntimeCheck, t.LayerOrdinal)).ToEquatableArray();

            public EquatableArray<TargetSpec> Targets { get; }
        }

        private static PlanSpec PlanSpec(ValidatedPlan plan, bool valid)
        {
            var a = plan.Arguments;
            var attributeType = a.Plan.Symbol;
            var layers = plan.LayersToTransform;
            var targets = valid && plan.Resolution is { } resolution
                ? TargetSpecsCache.GetValue(resolution, static r => new TargetSpecs(r)).Targets
                : EquatableArray<TargetSpec>.Empty;
            var names = AttributeNames.GetValue(attributeType, static t => new AttributeTypeNames(t.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat), ConfigTypeOf(t)));
            return new PlanSpec(
                names.Type,
                a.Plan.Kind.DisplayName,
                names.ConfigType,
                a.AdapterName,
                a.Plan.Kind.ImpliedTargets(a) ?? a.Targets ?? string.Empty,
                valid ? a.Named.Select(n => new ArgumentSpec(n.Key, Literal(attributeType, n.Key, n.Value))).ToEquatableArray() : EquatableArray<ArgumentSpec>.Empty,
                targets,
                layers is not null,
                (layers ?? new List<int>()).Distinct().OrderBy(i => i).ToEquatableArray(),
                !a.Plan.Kind.AdaptsLayers);
        }

        /// <summary>An attribute type's C# name and its config type, formatted once per type.</summary>
        private sealed record AttributeTypeNames(string Type, string ConfigType);

        private static readonly ConditionalWeakTable<INamedTypeSymbol, AttributeTypeNames> AttributeNames = new();

        /// <summary>The return type of the attribute's <c>ToConfig()</c> (its method's config type).</summary>
        private static string ConfigTypeOf(INamedTypeSymbol attributeType)
        {
            for (var t = attributeType; t is not null; t = t.BaseType)
            {
                if (t.GetMembers("ToConfig").OfType<IMethodSymbol>().FirstOrDefault(m => m.Parameters.Length == 0) is { } method)
                    return method.ReturnType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat);
            }

            return "global::Lora.Peft.PeftConfig";
        }

        /// <summary>A named argument's value as C# text (numbers as literals, enums as members, arrays as
        /// <c>new T[] { ... }</c>).</summary>
        private static string Literal(INamedTypeSymbol attributeType, string property, TypedConstant value)
        {
            if (value.IsNull)
                return "null";
            switch (value.Kind)
            {
                case TypedConstantKind.Array:
                    var element = (value.Type as IArrayTypeSymbol)?.ElementType.ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat) ?? "object";
                    return $"new {element}[] {{ {string.Join(", ", value.Values.Select(v => Literal(attributeType, property, v)))} }}";
                case TypedConstantKind.Enum:
                    return EnumMember(attributeType, property, System.Convert.ToInt32(value.Value, CultureInfo.InvariantCulture));
                case TypedConstantKind.Error:
                    // The argument does not bind (the compiler reports it): keep the emitted code quiet.
                    return "default";
                case TypedConstantKind.Type:
                    return $"typeof({((ITypeSymbol)value.Value!).ToDisplayString(SymbolDisplayFormat.FullyQualifiedFormat)})";
            }

            return value.Value switch
            {
                double d => DoubleLiteral(d),
                float f => f.ToString("R", CultureInfo.InvariantCulture) + "F",
                string text => SymbolDisplay.FormatLiteral(text, quote: true),
                bool b => b ? "true" : "false",
                long l => l.ToString(CultureInfo.InvariantCulture) + "L",
                var other => SymbolDisplay.FormatPrimitive(other!, quoteStrings: true, useHexadecimalNumbers: false),
            };
        }

        /// <summary>Enum member texts already formatted, per attribute type (a metadata symbol: shared by compilations
        /// over the same references).</summary>
        private static readonly ConditionalWeakTable<INamedTypeSymbol, ConcurrentDictionary<string, string>> EnumMembers = new();

        /// <summary>The enum member of property <paramref name="property"/>'s value (e.g. <c>global::…LoraBias.LoraOnly</c>).</summary>
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
            var enumType = PropertyType(attributeType, property) as INamedTypeSymbol;
            var member = enumType?.GetMembers().OfType<IFieldSymbol>().FirstOrDefault(f => f.HasConstantValue && System.Convert.ToInt32(f.ConstantValue, CultureInfo.InvariantCulture) == value);
            return member is null ? $"({enumType?.ToDisplayString(TypeFormat) ?? "int"}){value}" : $"{enumType!.ToDisplayString(TypeFormat)}.{member.Name}";
        }

        private static ITypeSymbol? PropertyType(INamedTypeSymbol attributeType, string property)
        {
            for (var t = attributeType; t is not null; t = t.BaseType)
            {
                if (t.GetMembers(property).OfType<IPropertySymbol>().FirstOrDefault() is { } p)
                    return p.Type is IArrayTypeSymbol array ? array.ElementType : p.Type;
            }

            return null;
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

            private static INamedTypeSymbol?[] BuiltWithOf(LoraSymbols symbols) => new[] { symbols.ModelConfig, symbols.ScalarType, symbols.Device, symbols.QuantizationConfig };
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

        /// <summary>True when <paramref name="baseType"/> or one of its bases declares the generated signature,
        /// <c>FromPretrained(string, ScalarType, Device?, QuantizationConfig?)</c> (<c>CausalLM</c> and every built-in
        /// architecture do), so the generated one needs <c>new</c>. A base's <c>FromPretrained(string, ScalarType,
        /// Device?)</c> (a user architecture's) is not hidden and needs none: calls bind to the generated method anyway,
        /// C# preferring the most derived applicable candidate.</summary>
        private static bool DeclaresFromPretrained(INamedTypeSymbol baseType, LoraSymbols symbols)
        {
            for (INamedTypeSymbol? t = baseType; t is not null; t = t.BaseType)
            {
                foreach (var method in t.GetMembers("FromPretrained").OfType<IMethodSymbol>())
                {
                    var ps = method.Parameters;
                    if (method.IsStatic && method.TypeParameters.Length == 0 && ps.Length == 4
                        && ps.All(p => p.RefKind == RefKind.None)
                        && ps[0].Type.SpecialType == SpecialType.System_String
                        && SymbolEqualityComparer.Default.Equals(ps[1].Type, symbols.ScalarType)
                        && SymbolEqualityComparer.Default.Equals(ps[2].Type, symbols.Device)
                        && SymbolEqualityComparer.Default.Equals(ps[3].Type, symbols.QuantizationConfig))
                        return true;
                }
            }

            return false;
        }
    }
}
