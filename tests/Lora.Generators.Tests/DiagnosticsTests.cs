using System.Text.RegularExpressions;
using Lora.Generators.Diagnostics.Analyzers;
using Lora.Generators.Tests.Helpers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp.Testing;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Testing;

namespace Lora.Generators.Tests;

/// <summary>
/// Every rule, with the diagnostic's span marked on the offending attribute argument (<c>{|LORA0001:"x_proj"|}</c>),
/// and for each invalid case the MVVM-style "no cascade" check: the generator emits nothing that depends on the plan
/// (only the forwarding constructors of a valid partial model) and the compilation has no compiler error.
/// </summary>
public class DiagnosticsTests
{
    private const string Usings = "using Lora;\nusing Lora.Models;\nusing Lora.Adapters;\n\nnamespace Demo;\n\n";

    public static TheoryData<string, string> Cases => new()
    {
        { "LORA0001", """[Lora(R = 8, Targets = {|LORA0001:"x_proj"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0001", """[{|LORA0001:Lora(R = 8)|}] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0002", """[Lora(Targets = {|LORA0002:"input_layernorm"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0002", """[Lora(Targets = {|LORA0002:"embed_tokens|q_proj"|}, UseDora = true)] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0002", """[Lora(Targets = {|LORA0002:"wte|c_attn"|}, UseDora = true)] public partial class M : Gpt2LMHeadModel { }""" },
        { "LORA0002", """[Lora(Targets = {|LORA0002:"attn"|})] public partial class M : Gpt2LMHeadModel { }""" },
        { "LORA0003", """[Lora(Targets = {|LORA0003:"q_proj("|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0004", """[Lora(R = {|LORA0004:0|}, Targets = "q_proj")] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0005", """[Lora(Alpha = {|LORA0005:-1|}, Targets = "q_proj")] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0006", """[Lora(Dropout = {|LORA0006:1.0|}, Targets = "q_proj")] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0006", """[Lora(Dropout = {|LORA0006:-0.1|}, Targets = "q_proj")] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0007", """[Lora(Targets = "q_proj")] public class {|LORA0007:M|} : LlamaForCausalLM { public M(LlamaConfig c) : base(c) { } }""" },
        { "LORA0008", """public class Plain { } [Lora(Targets = "q_proj")] public partial class M : {|LORA0008:Plain|} { }""" },
        { "LORA0009", """[Lora(Targets = "q_proj")] [Lora(Targets = "v_proj", AdapterName = {|LORA0009:"default"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0009", """[Lora(Targets = "q_proj")] [{|LORA0009:Lora(Targets = "v_proj")|}] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0009", """[Lora(Targets = "q_proj", AdapterName = {|LORA0009:"a/b"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0010", """[Lora(Targets = "q_proj", LayersToTransform = {|LORA0010:new[] { 0, -1 }|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0010", """[Lora(Targets = "lm_head", LayersToTransform = {|LORA0010:new[] { 0 }|})] public partial class M : LlamaForCausalLM { }""" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Analyzer_reports_the_rule_on_the_argument(string id, string code)
    {
        var source = Usings + code;
        switch (id)
        {
            case "LORA0001" or "LORA0002" or "LORA0003" or "LORA0010":
                await VerifyAsync<InvalidLoraTargetAnalyzer>(source);
                break;
            case "LORA0004" or "LORA0005" or "LORA0006":
                await VerifyAsync<InvalidLoraHyperparameterAnalyzer>(source);
                break;
            default:
                await VerifyAsync<InvalidLoraModelDeclarationAnalyzer>(source);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Generator_emits_nothing_and_nothing_cascades(string id, string code)
    {
        var source = Usings + Regex.Replace(code, @"\{\|LORA\d{4}:(.*?)\|\}", "$1");
        var (result, output) = TestCompilation.Run(TestCompilation.Create(source));
        // Nothing that depends on the plan; at most the forwarding constructors that keep the class constructible.
        var generated = result.Results.Single().GeneratedSources;
        Assert.All(generated, s => Assert.DoesNotContain("InjectLora(", s.SourceText.ToString(), StringComparison.Ordinal));
        Assert.True(generated.Length <= 1);
        if (id is "LORA0007" or "LORA0008")
            Assert.Empty(generated);
        Assert.Empty(result.Diagnostics);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var reported = await AnalyzerRunner.Diagnostics(output);
        Assert.Contains(reported, d => d.Id == id);
    }

    [Fact]
    public async Task Messages_list_the_adaptable_layers_and_name_the_culprit()
    {
        var output = TestCompilation.Create(Usings + """[Lora(Targets = "x_proj")] public partial class M : LlamaForCausalLM { }""");
        var message = Assert.Single(await AnalyzerRunner.Diagnostics(output)).GetMessage(System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal("[Lora] on 'M': Targets 'x_proj' match no adaptable layer of LlamaForCausalLM; adaptable layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head", message);

        output = TestCompilation.Create(Usings + """[Lora(Targets = "embed_tokens", UseDora = true)] public partial class M : LlamaForCausalLM { }""");
        var dora = Assert.Single(await AnalyzerRunner.Diagnostics(output));
        Assert.Equal("LORA0002", dora.Id);
        Assert.Equal("[Lora] on 'M': Targets 'embed_tokens' select 'model.embed_tokens' (EmbeddingLayer), which cannot host DoRA (UseDora = true applies to linear layers only; leave the embedding out of Targets or turn DoRA off); adaptable layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head", dora.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("docs/diagnostics/LORA0002.md", dora.Descriptor.HelpLinkUri);

        output = TestCompilation.Create(Usings + """[Lora(Targets = "input_layernorm")] public partial class M : LlamaForCausalLM { }""");
        var norm = Assert.Single(await AnalyzerRunner.Diagnostics(output));
        Assert.Contains("'model.layers.{i}.input_layernorm' (RmsNorm), which cannot host LoRA (only linear layers, LinearLayer and Conv1D, and embedding tables named by Targets can)", norm.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""[Lora(Targets = "embed_tokens")] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = "embed_tokens|q_proj|v_proj", ModulesToSave = new[] { "lm_head" })] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = @"model\.embed_tokens")] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = "wte|c_attn")] public partial class M : Gpt2LMHeadModel { }""")]
    public async Task Embeddings_named_by_Targets_are_valid_targets(string code)
    {
        var (result, output) = TestCompilation.Run(TestCompilation.Create(Usings + code));
        Assert.Empty(await AnalyzerRunner.Diagnostics(output));
        Assert.Empty(TestCompilation.Problems(output));
        var model = result.Results.Single().GeneratedSources.Single(s => s.HintName.EndsWith(".Lora.StateDict.g.cs", StringComparison.Ordinal)).SourceText.ToString();
        Assert.Contains("LoraEmbeddingTargets(", model, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_rule_has_a_documentation_page_and_a_release_entry()
    {
        var ids = AnalyzerRunner.All.SelectMany(a => a.SupportedDiagnostics).Select(d => d.Id).Distinct().Order().ToList();
        Assert.Equal(Enumerable.Range(1, 13).Select(i => $"LORA{i:0000}"), ids);
        var unshipped = File.ReadAllText(Path.Combine(TestCompilation.RepoRoot, "src", "Lora.Generators", "AnalyzerReleases.Unshipped.md"));
        foreach (var id in ids)
        {
            Assert.True(File.Exists(Path.Combine(TestCompilation.RepoRoot, "docs", "diagnostics", id + ".md")), id + ".md");
            Assert.Contains(id + " |", unshipped, StringComparison.Ordinal);
        }
    }

    private static async Task VerifyAsync<TAnalyzer>(string source)
        where TAnalyzer : DiagnosticAnalyzer, new()
    {
        var test = new CSharpAnalyzerTest<TAnalyzer, DefaultVerifier>
        {
            TestCode = source,
            // No reference-assembly package (nothing is downloaded): the real references are added below.
            ReferenceAssemblies = new ReferenceAssemblies("net10.0"),
            // Without the generator a class that relies on forwarded constructors does not compile (CS7036); the
            // compiler side is checked with the generator in Generator_emits_nothing_and_nothing_cascades.
            CompilerDiagnostics = CompilerDiagnostics.None,
        };
        test.TestState.AdditionalReferences.AddRange(TestCompilation.References);
        await test.RunAsync();
    }
}
