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
/// and for each invalid case the MVVM-style "no cascade" check: the generator keeps every member's signature (bodies that
/// throw naming the diagnostic), so code that uses them compiles and the LORA error is the only error.
/// </summary>
public class DiagnosticsTests
{
    private const string Usings = "using Lora;\nusing Lora.Models;\nusing Lora.Quantization;\nusing Lora.Tuners.LoRA;\n\nnamespace Demo;\n\n";

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
        { "LORA0001", """[IA3(Targets = {|LORA0001:"x_proj"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0002", """[IA3(Targets = {|LORA0002:"embed_tokens|k_proj"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0003", """[IA3(Targets = "k_proj|down_proj", FeedForward = {|LORA0003:"down_proj("|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0014", """[IA3(Targets = "k_proj|v_proj", FeedForward = {|LORA0014:"down_proj"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0014", """[IA3(Targets = "k_proj|v_proj", FeedForward = {|LORA0014:"nothing"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0009", """[Lora(Targets = "q_proj")] [IA3(Targets = "v_proj", AdapterName = {|LORA0009:"default"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0015", """[{|LORA0015:Quantize(QuantizationType.Nf4)|}] public class M : LlamaForCausalLM { public M(LlamaConfig c) : base(c) { } }""" },
        { "LORA0016", """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Nf4, Blocksize = {|LORA0016:100|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0016", """[IA3(Targets = "k_proj|v_proj|down_proj")] [Quantize(QuantizationType.Fp4, Blocksize = {|LORA0016:8192|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0017", """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, DoubleQuant = {|LORA0017:true|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0018", """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Nf4, Compute = {|LORA0018:TorchSharp.torch.ScalarType.Float64|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0018", """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, Compute = {|LORA0018:TorchSharp.torch.ScalarType.Int8|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0019", """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, Int8Threshold = {|LORA0019:-1.0|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0019", """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, Int8Threshold = {|LORA0019:double.NaN|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0021", """[PrefixTuning(VirtualTokens = {|LORA0021:0|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0021", """[PrefixTuning(Projection = true, EncoderHiddenSize = {|LORA0021:-4|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0021", """[PromptTuning(InitText = {|LORA0021:""|})] public partial class M : Gpt2LMHeadModel { }""" },
        { "LORA0021", """[PTuning(EncoderLayers = {|LORA0021:3|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0021", """[PTuning(Encoder = Lora.Tuners.PTuning.PTuningEncoderType.Lstm, EncoderDropout = {|LORA0021:1.5|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0022", """public class OwnForward : LlamaForCausalLM { public OwnForward(LlamaConfig c, TorchSharp.torch.ScalarType d = TorchSharp.torch.ScalarType.Float32, TorchSharp.torch.Device? dev = null) : base(c, d, dev) { } public override TorchSharp.torch.Tensor Forward(TorchSharp.torch.Tensor inputIds, TorchSharp.torch.Tensor? attentionMask = null, TorchSharp.torch.Tensor? positionIds = null, KvCache? cache = null) => base.Forward(inputIds, attentionMask, positionIds, cache); } [{|LORA0022:PromptTuning(VirtualTokens = 4)|}] public partial class M : OwnForward { }""" },
        { "LORA0023", """[BottleneckAdapter(Size = 8, Targets = {|LORA0023:"q_proj"|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0024", """[BottleneckAdapter(Size = 8, ReductionFactor = {|LORA0024:4|})] public partial class M : LlamaForCausalLM { }""" },
        { "LORA0024", """[BottleneckAdapter(NonLinearity = {|LORA0024:"softplus"|})] public partial class M : Gpt2LMHeadModel { }""" },
        { "LORA0024", """[BottleneckAdapter(Size = {|LORA0024:-1|}, Dropout = {|LORA0024:1.0|})] public partial class M : LlamaForCausalLM { }""" },
    };

    /// <summary>Settings the quantization type ignores: a warning (LORA0020) on the argument; the plan stays valid.</summary>
    public static TheoryData<string> IgnoredSettings => new()
    {
        """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, Blocksize = {|LORA0020:128|})] public partial class M : LlamaForCausalLM { }""",
        """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, Compute = {|LORA0020:TorchSharp.torch.ScalarType.BFloat16|})] public partial class M : LlamaForCausalLM { }""",
        """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, DoubleQuant = {|LORA0020:false|})] public partial class M : LlamaForCausalLM { }""",
        """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Nf4, Int8Threshold = {|LORA0020:4.0|})] public partial class M : LlamaForCausalLM { }""",
    };

    /// <summary>Code elsewhere in the project that uses every generated member and the runtime API over them: with an
    /// invalid plan it must still compile (the members keep their signatures and throw), so the LORA error is the
    /// only error the user sees.</summary>
    private const string Usage = """
        using Lora;
        using Lora.Models;
        using Lora.Peft;

        namespace Demo;

        public static class Usage
        {
            public static void Run()
            {
                using var model = M.FromPretrained("models/llama");
                model.InjectAdapters();
                model.PrintTrainableParameters();
                foreach (var (path, layer) in model.AdapterTargets())
                    _ = layer.HasAdapter(path);
                foreach (var (parameter, key) in model.AdapterStateDictMap())
                    _ = parameter + key;
                _ = M.Plan;
                _ = M.AdapterPlans.Count;
                using M quantized = M.FromPretrained("models/llama", quantization: Lora.Quantization.QuantizationConfig.QLoRA);
                _ = quantized.Quantization;
                _ = model.AdapterConfig();
                _ = model.MarkAdaptersTrainable();
                model.SaveAdapter("out/adapter");
                model.LoadAdapter("out/adapter");
                model.MergeAndUnload();
            }
        }
        """;

    /// <summary><see cref="Usage"/> plus the member <c>[Quantize]</c> adds.</summary>
    private static readonly string QuantizeUsage = Usage.Replace("_ = M.Plan;", "_ = M.Plan;\n        _ = M.DeclaredQuantization.Type;", StringComparison.Ordinal);

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Analyzer_reports_the_rule_on_the_argument(string id, string code)
    {
        var source = Usings + code;
        switch (id)
        {
            case "LORA0015" or "LORA0016" or "LORA0017" or "LORA0018" or "LORA0019" or "LORA0020":
                await VerifyAsync<InvalidQuantizeAnalyzer>(source);
                break;
            case "LORA0001" or "LORA0002" or "LORA0003" or "LORA0010" or "LORA0014":
                await VerifyAsync<InvalidLoraTargetAnalyzer>(source);
                break;
            case "LORA0004" or "LORA0005" or "LORA0006":
                await VerifyAsync<InvalidLoraHyperparameterAnalyzer>(source);
                break;
            case "LORA0021" or "LORA0022":
                await VerifyAsync<InvalidPromptLearningAnalyzer>(source);
                break;
            case "LORA0023" or "LORA0024":
                await VerifyAsync<InvalidBottleneckAnalyzer>(source);
                break;
            default:
                await VerifyAsync<InvalidLoraModelDeclarationAnalyzer>(source);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Invalid_plans_keep_the_generated_signatures_and_nothing_cascades(string id, string code)
    {
        var source = Usings + Regex.Replace(code, @"\{\|LORA\d{4}:(.*?)\|\}", "$1");
        // LORA0007 (not partial) leaves nothing to add members to; LORA0008 (not a model) has no FromPretrained to keep;
        // LORA0015 ([Quantize] without a plan) gets nothing generated. A class with [Quantize] keeps DeclaredQuantization.
        var usage = id switch
        {
            "LORA0007" or "LORA0015" => null,
            "LORA0008" => Usage.Replace("using var model = M.FromPretrained(\"models/llama\");", "using var model = new M();", StringComparison.Ordinal)
                .Replace("using M quantized = M.FromPretrained(\"models/llama\", quantization: Lora.Quantization.QuantizationConfig.QLoRA);", string.Empty, StringComparison.Ordinal)
                .Replace("_ = quantized.Quantization;", string.Empty, StringComparison.Ordinal)
                .Replace("model.MergeAndUnload();", string.Empty, StringComparison.Ordinal)
                .Replace("using var model", "var model", StringComparison.Ordinal),
            _ when code.Contains("[Quantize(", StringComparison.Ordinal) => QuantizeUsage,
            _ => Usage,
        };
        var (result, output) = TestCompilation.Run(usage is null ? TestCompilation.Create(source) : TestCompilation.Create(source, usage));
        var generated = result.Results.Single().GeneratedSources;
        if (id is "LORA0007" or "LORA0015")
        {
            Assert.Empty(generated);
        }
        else
        {
            var file = Assert.Single(generated).SourceText.ToString();
            Assert.Contains($"adapter plan is invalid ({id}", file, StringComparison.Ordinal);
            Assert.DoesNotContain("PeftInjector.Attach", file, StringComparison.Ordinal);
        }

        Assert.Empty(result.Diagnostics);
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var reported = await AnalyzerRunner.Diagnostics(output);
        Assert.Contains(reported, d => d.Id == id);
        Assert.All(reported, d => Assert.StartsWith("LORA", d.Id, StringComparison.Ordinal));
    }

    [Fact]
    public void A_valid_plan_compiles_with_the_same_usage()
    {
        var (result, output) = TestCompilation.Run(TestCompilation.Create(Usings + """[Lora(R = 8, Targets = "q_proj|v_proj")] public partial class M : LlamaForCausalLM { }""", Usage));
        Assert.Equal(2, result.Results.Single().GeneratedSources.Length);
        Assert.Empty(TestCompilation.Problems(output));
    }

    [Theory]
    [InlineData("""[PrefixTuning(VirtualTokens = 8, Projection = true)] public partial class M : LlamaForCausalLM { }""", 2)]
    [InlineData("""[PromptTuning(VirtualTokens = 8, InitText = "Answer:")] public partial class M : Gpt2LMHeadModel { }""", 2)]
    [InlineData("""[PTuning(Encoder = Lora.Tuners.PTuning.PTuningEncoderType.Lstm, EncoderLayers = 1)] public partial class M : LlamaForCausalLM { }""", 2)]
    [InlineData("""[BottleneckAdapter(Size = 16, Placement = Lora.Tuners.Bottleneck.BottleneckPlacement.Houlsby)] public partial class M : Qwen2ForCausalLM { }""", 2)]
    [InlineData("""[Lora(Targets = "q_proj|v_proj")] [PromptTuning(AdapterName = "prompt")] public partial class M : LlamaForCausalLM { }""", 2)]
    public async Task Valid_prompt_learning_and_bottleneck_plans_compile_with_the_same_usage(string code, int files)
    {
        var (result, output) = TestCompilation.Run(TestCompilation.Create(Usings + code, Usage));
        Assert.Equal(files, result.Results.Single().GeneratedSources.Length);
        Assert.Empty(TestCompilation.Problems(output));
        Assert.Empty(await AnalyzerRunner.Diagnostics(output));
    }

    [Fact]
    public void A_valid_quantized_plan_compiles_with_the_same_usage()
    {
        var (result, output) = TestCompilation.Run(TestCompilation.Create(
            Usings + """[Lora(R = 8, Targets = "q_proj|v_proj")] [Quantize(QuantizationType.Nf4, DoubleQuant = true)] public partial class M : LlamaForCausalLM { }""", QuantizeUsage));
        Assert.Equal(2, result.Results.Single().GeneratedSources.Length);
        Assert.Empty(TestCompilation.Problems(output));
    }

    [Theory]
    [MemberData(nameof(IgnoredSettings))]
    public async Task Settings_the_quantization_type_ignores_are_a_warning_and_the_plan_stays_valid(string code)
    {
        await VerifyAsync<InvalidQuantizeAnalyzer>(Usings + code);
        await WarningKeepsThePlanValid(code, QuantizeUsage, "LORA0020");
    }

    /// <summary>A misspelt alternative of Targets: a warning (LORA0025) on the argument; the plan stays valid and adapts
    /// what the other alternatives select.</summary>
    [Theory]
    [InlineData("""[Lora(Targets = {|LORA0025:"q_proj|v_projj"|})] public partial class M : LlamaForCausalLM { }""", "v_projj")]
    [InlineData("""[IA3(Targets = {|LORA0025:"k_proj|v_proj|down_prj"|})] public partial class M : LlamaForCausalLM { }""", "down_prj")]
    [InlineData("""[Lora(Targets = {|LORA0025:"(q|v)_proj|x_proj"|})] public partial class M : LlamaForCausalLM { }""", "x_proj")]
    public async Task A_Targets_alternative_that_matches_nothing_is_a_warning_and_the_plan_stays_valid(string code, string alternative)
    {
        await VerifyAsync<InvalidLoraTargetAnalyzer>(Usings + code);
        var reported = await WarningKeepsThePlanValid(code, Usage, "LORA0025");
        Assert.Contains($"the alternative '{alternative}' of Targets", reported.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    /// <summary>With the warning <paramref name="id"/> (and nothing else) reported, the generator emits the plan as valid
    /// and <paramref name="usage"/> compiles against it. Returns the warning.</summary>
    private static async Task<Diagnostic> WarningKeepsThePlanValid(string code, string usage, string id)
    {
        var (result, output) = TestCompilation.Run(TestCompilation.Create(Usings + Regex.Replace(code, @"\{\|LORA\d{4}:(.*?)\|\}", "$1"), usage));
        var generated = result.Results.Single().GeneratedSources;
        Assert.Equal(2, generated.Length);
        Assert.DoesNotContain(generated, g => g.SourceText.ToString().Contains("is invalid", StringComparison.Ordinal));
        Assert.Empty(TestCompilation.Problems(output));
        var reported = Assert.Single(await AnalyzerRunner.Diagnostics(output));
        Assert.Equal((id, DiagnosticSeverity.Warning), (reported.Id, reported.Severity));
        return reported;
    }

    [Theory]
    [InlineData("""[Lora(Targets = "q_proj|v_proj")] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = "(q_proj|c_attn)")] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = @"model\.layers\.0\.self_attn\.(q_proj|x_proj)|v_proj")] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = "[qv]_proj|o_proj")] public partial class M : LlamaForCausalLM { }""")]
    [InlineData("""[Lora(Targets = "all-linear")] public partial class M : LlamaForCausalLM { }""")]
    public async Task Alternatives_inside_groups_or_that_all_match_raise_no_warning(string code)
    {
        Assert.Empty(await AnalyzerRunner.Diagnostics(TestCompilation.Create(Usings + code)));
    }

    [Fact]
    public async Task Quantize_messages_name_the_attribute_the_class_and_the_setting()
    {
        async Task<IReadOnlyList<string>> Messages(string code) =>
            (await AnalyzerRunner.Diagnostics(TestCompilation.Create(Usings + code)))
                .OrderBy(d => d.Id, StringComparer.Ordinal)
                .Select(d => d.Id + ": " + d.GetMessage(System.Globalization.CultureInfo.InvariantCulture)).ToList();

        Assert.Equal(
            [
                "LORA0015: [Quantize] on 'M': the class has no adapter plan attribute ([Lora], [IA3], [PrefixTuning], [PromptTuning], [PTuning], [BottleneckAdapter]); quantization applies to the frozen base of a model with adapters, so add a plan or remove [Quantize]",
                "LORA0016: [Quantize] on 'M': Blocksize = 100; 4-bit weights use one of bitsandbytes' block sizes: 32, 64, 128, 256, 512, 1024, 2048, 4096",
            ],
            await Messages("""[Quantize(QuantizationType.Nf4, Blocksize = 100)] public class M : LlamaForCausalLM { public M(LlamaConfig c) : base(c) { } }"""));
        Assert.Equal(
            [
                "LORA0017: [Quantize] on 'M': DoubleQuant = true with QuantizationType.Int8; double quantization applies to the block scales of 4-bit weights (Nf4, Fp4), int8 weights have one fp32 scale per row",
                "LORA0018: [Quantize] on 'M': Compute = ScalarType.Float64; the compute dtype must be ScalarType.Float32, ScalarType.BFloat16 or ScalarType.Float16",
                "LORA0019: [Quantize] on 'M': Int8Threshold = -0.5; the outlier threshold must be at least 0 (0 turns the outlier decomposition off)",
            ],
            await Messages("""[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, DoubleQuant = true, Compute = TorchSharp.torch.ScalarType.Float64, Int8Threshold = -0.5)] public partial class M : LlamaForCausalLM { }"""));
        Assert.Equal(
            ["LORA0020: [Quantize] on 'M': Blocksize = 128 has no effect with QuantizationType.Int8 (int8 weights have one scale per row, not per block); remove it"],
            await Messages("""[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Int8, Blocksize = 128)] public partial class M : LlamaForCausalLM { }"""));
        Assert.Empty(await Messages("""[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Fp4, Blocksize = 4096, Compute = TorchSharp.torch.ScalarType.Float16, SkipModules = "o_proj")] public partial class M : LlamaForCausalLM { }"""));

        var diagnostic = Assert.Single(await AnalyzerRunner.Diagnostics(TestCompilation.Create(Usings + """[Lora(Targets = "q_proj")] [Quantize(QuantizationType.Nf4, Blocksize = 100)] public partial class M : LlamaForCausalLM { }""")));
        Assert.Equal("https://github.com/lora-dotnet/lora/blob/main/docs/diagnostics/LORA0016.md", diagnostic.Descriptor.HelpLinkUri);
    }

    [Fact]
    public void FromPretrained_with_a_quantization_binds_to_the_generated_method()
    {
        // Were the generated FromPretrained not to hide CausalLM's (string, ScalarType, Device?, QuantizationConfig?),
        // this call would bind to the base and return a LlamaForCausalLM without adapters: CS0266 here.
        const string use = """
            using Lora.Quantization;

            namespace Demo;

            public static class Use
            {
                public static M Run() => M.FromPretrained("models/llama", quantization: QuantizationConfig.QLoRA);

                public static M Positional() => M.FromPretrained("models/llama", TorchSharp.torch.ScalarType.BFloat16, null, QuantizationConfig.Int8);
            }
            """;
        var (_, output) = TestCompilation.Run(TestCompilation.Create(Usings + """[Lora(Targets = "q_proj")] public partial class M : LlamaForCausalLM { }""", use));
        Assert.Empty(TestCompilation.Problems(output));
    }

    [Fact]
    public void A_user_architecture_with_a_three_parameter_FromPretrained_gets_the_generated_one()
    {
        const string source = """
            using Lora;
            using Lora.Models;
            using TorchSharp;
            using static TorchSharp.torch;

            namespace Demo;

            public class MyLm : LlamaForCausalLM
            {
                public MyLm(LlamaConfig config, ScalarType dtype = ScalarType.Float32, Device? device = null)
                    : base(config, dtype, device)
                {
                }

                public static MyLm FromPretrained(string directory, ScalarType dtype = ScalarType.Float32, Device? device = null) =>
                    FromPretrained<MyLm, LlamaConfig>(directory, dtype, device, static (c, d, dev) => new MyLm(c, d, dev));
            }

            [Lora(Targets = "q_proj")]
            [Quantize(Lora.Quantization.QuantizationType.Nf4)]
            public partial class MyLora : MyLm
            {
            }

            public static class Use
            {
                public static MyLora Run() => MyLora.FromPretrained("models/llama");

                public static MyLora Quantized() => MyLora.FromPretrained("models/llama", ScalarType.Float32, null, null);
            }
            """;
        var (result, output) = TestCompilation.Run(TestCompilation.Create(source));
        Assert.Empty(result.Diagnostics);
        Assert.Contains("public static new global::Demo.MyLora FromPretrained(", result.Results.Single().GeneratedSources.Single(s => s.HintName == "Demo.MyLora.Lora.g.cs").SourceText.ToString(), StringComparison.Ordinal);
        var problems = TestCompilation.Problems(output);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
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
        Assert.Equal("https://github.com/lora-dotnet/lora/blob/main/docs/diagnostics/LORA0002.md", dora.Descriptor.HelpLinkUri);

        output = TestCompilation.Create(Usings + """[Lora(Targets = "input_layernorm")] public partial class M : LlamaForCausalLM { }""");
        var norm = Assert.Single(await AnalyzerRunner.Diagnostics(output));
        Assert.Contains("'model.layers.{i}.input_layernorm' (RmsNorm), which cannot host LoRA (LoRA adapts EmbeddingLayer, LinearLayer)", norm.GetMessage(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

        output = TestCompilation.Create(Usings + """[IA3(Targets = "embed_tokens|k_proj")] public partial class M : LlamaForCausalLM { }""");
        var ia3 = Assert.Single(await AnalyzerRunner.Diagnostics(output));
        Assert.Equal("[IA3] on 'M': Targets 'embed_tokens|k_proj' select 'model.embed_tokens' (EmbeddingLayer), which cannot host IA3 (IA3 adapts LinearLayer); adaptable layers: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head", ia3.GetMessage(System.Globalization.CultureInfo.InvariantCulture));

        output = TestCompilation.Create(Usings + """[IA3(Targets = "k_proj|v_proj", FeedForward = "down_proj")] public partial class M : LlamaForCausalLM { }""");
        var ff = Assert.Single(await AnalyzerRunner.Diagnostics(output));
        Assert.Equal("[IA3] on 'M': FeedForward 'down_proj' selects 'model.layers.{i}.mlp.down_proj' (LinearLayer), which Targets 'k_proj|v_proj' do not select; every feed-forward module must be a target (PEFT requires feedforward_modules to be a subset of target_modules)", ff.GetMessage(System.Globalization.CultureInfo.InvariantCulture));
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
        var targets = result.Results.Single().GeneratedSources.Single(s => s.HintName.EndsWith(".Lora.Targets.g.cs", StringComparison.Ordinal)).SourceText.ToString();
        Assert.Matches(@"targets\.Add\(\(""(model\.embed_tokens|transformer\.wte)"", this\.(Model\.EmbedTokens|Transformer\.Wte)\)\);", targets);
    }

    [Fact]
    public void Every_rule_has_a_documentation_page_and_a_release_entry()
    {
        var ids = AnalyzerRunner.All.SelectMany(a => a.SupportedDiagnostics).Select(d => d.Id).Distinct().Order().ToList();
        Assert.Equal(Enumerable.Range(1, 25).Select(i => $"LORA{i:0000}"), ids);
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
