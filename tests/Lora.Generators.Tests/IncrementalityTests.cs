using Lora.Generators.Helpers;
using Lora.Generators.Tests.Helpers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Lora.Generators.Tests;

/// <summary>
/// The pipeline caches: edits that do not change a plan leave the Execute/Output steps Cached or Unchanged (nothing
/// re-emitted); changing the attribute makes them Modified; adding a second model leaves the first one's outputs cached.
/// </summary>
public class IncrementalityTests
{
    private const string Model = """
        using Lora;
        using Lora.Models;

        namespace Demo;

        [Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj")]
        public partial class CodeLlamaLora : LlamaForCausalLM
        {
        }
        """;

    private const string Other = """
        namespace Demo;

        public class Unrelated
        {
            public int Value => 1;
        }
        """;

    [Fact]
    public void Comment_edit_keeps_outputs_cached()
    {
        var reasons = RunTwice(Model, Model.Replace("public partial class", "// a comment\npublic partial class", StringComparison.Ordinal));
        AssertAll(reasons, WellKnownTrackingNames.Execute, IncrementalStepRunReason.Unchanged, IncrementalStepRunReason.Cached);
        AssertAll(reasons, WellKnownTrackingNames.Output, IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged);
    }

    [Fact]
    public void Unrelated_type_edit_keeps_outputs_cached()
    {
        var (first, second) = Drive([Model, Other], [Model, Other.Replace("=> 1", "=> 2", StringComparison.Ordinal)]);
        _ = first;
        AssertAll(second, WellKnownTrackingNames.Execute, IncrementalStepRunReason.Unchanged, IncrementalStepRunReason.Cached);
        AssertAll(second, WellKnownTrackingNames.Output, IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged);
    }

    [Fact]
    public void Attribute_change_modifies_outputs()
    {
        var reasons = RunTwice(Model, Model.Replace("R = 8", "R = 16", StringComparison.Ordinal));
        AssertAll(reasons, WellKnownTrackingNames.Execute, IncrementalStepRunReason.Modified);
        AssertAll(reasons, WellKnownTrackingNames.Output, IncrementalStepRunReason.Modified);
    }

    private const string Quantized = """
        using Lora;
        using Lora.Models;
        using Lora.Quantization;

        namespace Demo;

        [Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj")]
        [Quantize(QuantizationType.Nf4, DoubleQuant = true)]
        public partial class CodeLlamaLora : LlamaForCausalLM
        {
        }
        """;

    [Fact]
    public void Comment_edit_keeps_a_quantized_model_cached()
    {
        var reasons = RunTwice(Quantized, Quantized.Replace("public partial class", "// a comment\npublic partial class", StringComparison.Ordinal));
        AssertAll(reasons, WellKnownTrackingNames.Execute, IncrementalStepRunReason.Unchanged, IncrementalStepRunReason.Cached);
        AssertAll(reasons, WellKnownTrackingNames.Output, IncrementalStepRunReason.Cached, IncrementalStepRunReason.Unchanged);
    }

    [Theory]
    [InlineData("QuantizationType.Nf4, DoubleQuant = true", "QuantizationType.Fp4, DoubleQuant = true")]
    [InlineData("QuantizationType.Nf4, DoubleQuant = true", "QuantizationType.Nf4, DoubleQuant = false")]
    public void Quantize_change_modifies_outputs(string before, string after)
    {
        var reasons = RunTwice(Quantized, Quantized.Replace(before, after, StringComparison.Ordinal));
        AssertAll(reasons, WellKnownTrackingNames.Execute, IncrementalStepRunReason.Modified);
        AssertAll(reasons, WellKnownTrackingNames.Output, IncrementalStepRunReason.Modified);
    }

    [Fact]
    public void Adding_and_removing_Quantize_modifies_outputs()
    {
        var added = RunTwice(Model, Quantized);
        AssertAll(added, WellKnownTrackingNames.Output, IncrementalStepRunReason.Modified);
        var removed = RunTwice(Quantized, Model);
        AssertAll(removed, WellKnownTrackingNames.Output, IncrementalStepRunReason.Modified);
    }

    [Fact]
    public void Second_model_leaves_the_first_cached()
    {
        const string second = """
            using Lora;
            using Lora.Models;

            namespace Demo;

            [Lora(R = 4, Targets = "c_attn")]
            public partial class Gpt2Lora : Gpt2LMHeadModel
            {
            }
            """;
        var (_, run) = Drive([Model], [Model, second]);
        var outputs = run.TrackedSteps[WellKnownTrackingNames.Output].SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();
        Assert.Equal(2, outputs.Count);
        Assert.Contains(IncrementalStepRunReason.New, outputs);
        Assert.Contains(outputs, r => r is IncrementalStepRunReason.Cached or IncrementalStepRunReason.Unchanged);
        Assert.Equal(4, run.GeneratedSources.Length);
    }

    private static GeneratorRunResult RunTwice(string before, string after) => Drive([before], [after]).Second;

    /// <summary>Runs the driver on <paramref name="before"/>, then on the same compilation with the trees replaced by
    /// <paramref name="after"/>, and returns both runs' results for the generator.</summary>
    private static (GeneratorRunResult First, GeneratorRunResult Second) Drive(string[] before, string[] after)
    {
        var compilation = TestCompilation.Create(before);
        var driver = TestCompilation.CreateDriver().RunGenerators(compilation);
        var first = driver.GetRunResult().Results.Single();

        var updated = compilation;
        for (var i = 0; i < after.Length; i++)
        {
            var tree = CSharpSyntaxTree.ParseText(after[i], TestCompilation.ParseOptions, path: $"Input{i}.cs");
            updated = i < before.Length
                ? updated.ReplaceSyntaxTree(updated.SyntaxTrees.ElementAt(i), tree)
                : updated.AddSyntaxTrees(tree);
        }

        driver = driver.RunGenerators(updated);
        return (first, driver.GetRunResult().Results.Single());
    }

    private static void AssertAll(GeneratorRunResult run, string step, params IncrementalStepRunReason[] allowed)
    {
        var reasons = run.TrackedSteps[step].SelectMany(s => s.Outputs).Select(o => o.Reason).ToList();
        Assert.NotEmpty(reasons);
        Assert.All(reasons, r => Assert.Contains(r, allowed));
    }
}
