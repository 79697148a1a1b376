namespace Lora.PackageTests;

/// <summary>
/// The sources of the generator consumer: a valid <c>[Lora]</c> model on the built-in Llama architecture, checked at
/// build time against the <c>llama_qv</c> fixture checkpoint (<c>LoraCheckpoint</c>) and run (load, inject, mark
/// trainable, print PEFT's summary); and one invalid plan per file, each expected to be exactly one <c>error LORAxxxx</c>.
/// </summary>
internal static class GeneratorConsumer
{
    public const string ResultPrefix = "LORA-GENERATOR ";

    /// <summary>r = 8 on q_proj/v_proj of 2 layers (3,584) + the embedding (8·320 + 64·8 = 3,072) + lm_head saved in
    /// full (320·64 = 20,480).</summary>
    public const string ExpectedSummary = "trainable params: 27,136 || all params: ";

    public static string Program(string checkpoint) => $$"""
        using Lora;
        using Lora.Models;

        using var model = QvLora.FromPretrained({{Literal(checkpoint)}});
        model.MarkAdaptersTrainable();
        Console.WriteLine("{{ResultPrefix}}" + string.Join(",", model.AdapterTargets().Select(t => t.Path).Order(StringComparer.Ordinal)));
        model.PrintTrainableParameters();

        [Lora(R = 8, Alpha = 16, Targets = "embed_tokens|q_proj|v_proj", ModulesToSave = new[] { "lm_head" })]
        public partial class QvLora : LlamaForCausalLM
        {
        }
        """;

    /// <summary>Two checkpoints: the Llama one (checked against every Llama-based [Lora] class by its architectures)
    /// and the GPT-2 one, named for <c>M11</c> only, which it cannot describe.</summary>
    public static string Checkpoints(string llama, string gpt2) => $"""
        <LoraCheckpoint Include="{llama}" />
        <LoraCheckpoint Include="{gpt2}" Models="M11" />
        """;

    /// <summary>File name → (expected id, source). Each is a complete plan that is wrong in one way.</summary>
    public static IReadOnlyDictionary<string, (string Id, string Source)> InvalidPlans { get; } = new Dictionary<string, (string, string)>
    {
        ["Plan0001.cs"] = ("LORA0001", """[Lora(Targets = "x_proj")] public partial class M1 : LlamaForCausalLM { }"""),
        ["Plan0002.cs"] = ("LORA0002", """[Lora(Targets = "embed_tokens|q_proj", UseDora = true)] public partial class M2 : LlamaForCausalLM { }"""),
        ["Plan0003.cs"] = ("LORA0003", """[Lora(Targets = "q_proj(")] public partial class M3 : LlamaForCausalLM { }"""),
        ["Plan0004.cs"] = ("LORA0004", """[Lora(R = 0, Targets = "q_proj")] public partial class M4 : LlamaForCausalLM { }"""),
        ["Plan0007.cs"] = ("LORA0007", """[Lora(Targets = "q_proj")] public class M7 : LlamaForCausalLM { public M7(LlamaConfig c) : base(c) { } }"""),
        ["Plan0010.cs"] = ("LORA0010", """[Lora(Targets = "q_proj", LayersToTransform = new[] { 0, 5 })] public partial class M10 : LlamaForCausalLM { }"""),
        ["Plan0011.cs"] = ("LORA0011", """[Lora(Targets = "q_proj")] public partial class M11 : LlamaForCausalLM { }"""),
    }.ToDictionary(p => p.Key, p => (p.Value.Item1, "using Lora;\nusing Lora.Models;\n\n" + p.Value.Item2 + "\n"), StringComparer.Ordinal);

    /// <summary>Code that uses every generated member of the invalid <c>M1</c> (the new user's <c>Targets = "x_proj"</c>)
    /// and the runtime API over them: it must compile, so that the LORA0001 error is the only error of the build.</summary>
    public const string InvalidPlanUsage = """
        using Lora;

        public static class UsesInvalidPlan
        {
            public static void Run()
            {
                using var model = M1.FromPretrained("models/llama");
                model.InjectAdapters();
                model.PrintTrainableParameters();
                _ = M1.Plan.R;
                _ = model.AdapterTargets().Count + model.AdapterStateDictMap().Count;
                model.MarkAdaptersTrainable();
                model.SaveAdapter("out/adapter");
                model.LoadAdapter("out/adapter");
            }
        }
        """;

    private static string Literal(string text) => "@\"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
}
