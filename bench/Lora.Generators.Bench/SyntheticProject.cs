using System.Collections.Immutable;
using Basic.Reference.Assemblies;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;

namespace Lora.Generators.Bench;

/// <summary>
/// A synthetic project of <c>count</c> <c>[Lora]</c> models, one file each, over the built-in architectures and a
/// mix of plans (leaf lists, all projections, a full-path regex checked per index, LayersToTransform, embeddings,
/// modules_to_save, GPT-2 Conv1D, Qwen2), plus a few plain files.
/// </summary>
internal static class SyntheticProject
{
    public static readonly CSharpParseOptions ParseOptions = CSharpParseOptions.Default.WithLanguageVersion(LanguageVersion.Latest);

    private static readonly string[] Plans =
    [
        """[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj")] public partial class Model{0} : LlamaForCausalLM { }""",
        """[Lora(R = 16, Alpha = 32, Targets = ".*_proj", Dropout = 0.05)] public partial class Model{0} : LlamaForCausalLM { }""",
        """[Lora(R = 4, Alpha = 8, Targets = @"model\.layers\.(0|1|2)\.self_attn\.(q|k)_proj")] public partial class Model{0} : LlamaForCausalLM { }""",
        """[Lora(Targets = "q_proj|k_proj|v_proj|o_proj", LayersToTransform = new[] { 0, 3 })] public partial class Model{0} : LlamaForCausalLM { }""",
        """[Lora(Targets = "embed_tokens|q_proj|v_proj", ModulesToSave = new[] { "lm_head" })] public partial class Model{0} : LlamaForCausalLM { }""",
        """[Lora(R = 8, Alpha = 16, Targets = "c_attn")] public partial class Model{0} : Gpt2LMHeadModel { }""",
        """[Lora(Targets = "q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj", UseDora = true)] public partial class Model{0} : Qwen2ForCausalLM { }""",
        """[Lora(Targets = "q_proj")] [Lora(Targets = "v_proj", AdapterName = "second")] public partial class Model{0} : LlamaForCausalLM { }""",
    ];

    public static ImmutableArray<MetadataReference> References { get; } =
    [
        .. Net100.References.All,
        MetadataReference.CreateFromFile(typeof(TorchSharp.torch).Assembly.Location),
        MetadataReference.CreateFromFile(typeof(Lora.Tuners.LoRA.LoraConfig).Assembly.Location),
    ];

    public static string ModelSource(int i, string comment = "") =>
        $"using Lora;\nusing Lora.Models;\n\nnamespace Synthetic.N{i % 10};\n{comment}\n" + Plans[i % Plans.Length].Replace("{0}", i.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal) + "\n";

    public static CSharpCompilation Create(int count)
    {
        var trees = Enumerable.Range(0, count).Select(i => Parse(ModelSource(i), i)).ToList();
        for (var i = 0; i < 10; i++)
            trees.Add(CSharpSyntaxTree.ParseText($"namespace Synthetic.Plain;\npublic static class Helper{i} {{ public static int Twice(int x) => 2 * x; }}\n", ParseOptions, path: $"Helper{i}.cs"));
        return CSharpCompilation.Create("Synthetic", trees, References,
            new CSharpCompilationOptions(OutputKind.DynamicallyLinkedLibrary, nullableContextOptions: NullableContextOptions.Enable));
    }

    public static SyntaxTree Parse(string source, int i) => CSharpSyntaxTree.ParseText(source, ParseOptions, path: $"Model{i}.cs");
}
