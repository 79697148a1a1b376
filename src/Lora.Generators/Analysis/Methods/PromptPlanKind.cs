using System.Collections.Generic;
using System.Globalization;
using Lora.Generators.Diagnostics;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Analysis.Methods;

/// <summary>
/// What the prompt-learning attributes (<c>[PrefixTuning]</c>, <c>[PromptTuning]</c>, <c>[PTuning]</c>) share: no
/// layer targets (the encoder is attached to the model), <c>VirtualTokens</c> &gt; 0 (LORA0021), and an architecture
/// whose forward pass the runtime runs (no override of <c>CausalLM.Forward</c> between the class and
/// <c>CausalLM</c>, LORA0022).
/// </summary>
internal abstract class PromptPlanKind : PlanKind
{
    public override bool AdaptsLayers => false;

    public override void CheckArguments(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
        var tokens = a.Int("VirtualTokens", 20);
        if (tokens <= 0)
            Invalid(a, display, "VirtualTokens", tokens.ToString(CultureInfo.InvariantCulture), "the number of virtual tokens must be greater than 0", diagnostics);
        CheckOwn(a, display, diagnostics);
    }

    /// <summary>The method's own argument rules.</summary>
    protected virtual void CheckOwn(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
    }

    public override void CheckModel(PlanArguments a, string display, INamedTypeSymbol type, LoraSymbols symbols, List<LoraDiagnostic> diagnostics)
    {
        for (var t = type; t is not null && !SymbolEqualityComparer.Default.Equals(t, symbols.CausalLM); t = t.BaseType)
        {
            foreach (var member in t.GetMembers("Forward"))
            {
                if (member is IMethodSymbol { IsOverride: true, Parameters.Length: 4 })
                {
                    diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.ModelRejectsPromptLearning, a.AttributeLocation, new object[] { display, t.Name }));
                    return;
                }
            }
        }
    }

    protected static void Invalid(PlanArguments a, string display, string argument, string value, string rule, List<LoraDiagnostic> diagnostics) =>
        diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidPromptLearningSetting, a.LocationOf(argument), new object[] { display, argument, value, rule }));

    protected static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}

/// <summary><c>[PrefixTuning]</c>: <c>EncoderHiddenSize</c> not negative (0 = token_dim).</summary>
internal sealed class PrefixTuningPlanKind : PromptPlanKind
{
    public override string AttributeMetadataName => Helpers.WellKnownMetadataNames.PrefixTuningAttribute;

    public override string DisplayName => "PrefixTuning";

    public override string MethodName => "prefix tuning";

    protected override void CheckOwn(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
        var hidden = a.Int("EncoderHiddenSize", 0);
        if (hidden < 0)
            Invalid(a, display, "EncoderHiddenSize", hidden.ToString(CultureInfo.InvariantCulture), "the projection's width must be positive (or 0 for token_dim)", diagnostics);
    }
}

/// <summary><c>[PromptTuning]</c>: <c>InitText</c>, when given, is not empty.</summary>
internal sealed class PromptTuningPlanKind : PromptPlanKind
{
    public override string AttributeMetadataName => Helpers.WellKnownMetadataNames.PromptTuningAttribute;

    public override string DisplayName => "PromptTuning";

    public override string MethodName => "prompt tuning";

    protected override void CheckOwn(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
        if (a.Has("InitText") && a.String("InitText") is { Length: 0 })
            Invalid(a, display, "InitText", "\"\"", "the text the virtual tokens start from needs at least one token (leave InitText unset for a random start)", diagnostics);
    }
}

/// <summary><c>[PTuning]</c>: <c>EncoderHiddenSize</c> ≥ 0, <c>EncoderLayers</c> &gt; 0 (2 for the MLP, whose layers are
/// fixed), <c>EncoderDropout</c> in [0, 1).</summary>
internal sealed class PTuningPlanKind : PromptPlanKind
{
    public override string AttributeMetadataName => Helpers.WellKnownMetadataNames.PTuningAttribute;

    public override string DisplayName => "PTuning";

    public override string MethodName => "P-tuning";

    protected override void CheckOwn(PlanArguments a, string display, List<LoraDiagnostic> diagnostics)
    {
        var hidden = a.Int("EncoderHiddenSize", 0);
        if (hidden < 0)
            Invalid(a, display, "EncoderHiddenSize", hidden.ToString(CultureInfo.InvariantCulture), "the prompt encoder's width must be positive (or 0 for token_dim)", diagnostics);
        var layers = a.Int("EncoderLayers", 2);
        var lstm = a.Int("Encoder", 0) == 1;
        if (layers <= 0 || (!lstm && layers != 2))
            Invalid(a, display, "EncoderLayers", layers.ToString(CultureInfo.InvariantCulture), lstm ? "the LSTM needs at least one layer" : "the MLP prompt encoder has PEFT's fixed layers; EncoderLayers applies to Encoder = PTuningEncoderType.Lstm", diagnostics);
        var dropout = a.Double("EncoderDropout", 0);
        if (!(dropout >= 0 && dropout < 1))
            Invalid(a, display, "EncoderDropout", Format(dropout), "dropout must be at least 0 and less than 1", diagnostics);
    }
}
