using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Lora.Generators.Diagnostics.Analyzers;
using Lora.Generators.Tests.Helpers;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;

namespace Lora.Generators.Tests;

/// <summary>
/// <see cref="LoraCheckpointAnalyzer"/> on AdditionalText fixtures: the <c>llama_qv</c> base checkpoint's
/// <c>config.json</c> (2 layers, vocab 320) and the header of its <c>model.safetensors</c>, read here the way the
/// Lora.Build task extracts it (8-byte length + JSON), optionally edited to break it.
/// </summary>
public class CheckpointValidationTests
{
    private const string Usings = "using Lora;\nusing Lora.Models;\n\nnamespace Demo;\n\n";
    private const string Dir = "/checkpoints/llama_qv";

    private static string Base => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_qv", "base");

    [Theory]
    [InlineData("""[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj")]""")]
    [InlineData("""[Lora(Targets = ".*_proj|lm_head", LayersToTransform = new[] { 1 })]""")]
    [InlineData("""[Lora(Targets = @"model\.layers\.1\.mlp\.(gate|up)_proj")]""")]
    [InlineData("""[Lora(Targets = "embed_tokens|q_proj", ModulesToSave = new[] { "lm_head" })]""")]
    public async Task A_plan_the_checkpoint_has_is_clean(string attribute)
    {
        Assert.Empty(await Diagnostics(attribute, Header()));
    }

    [Fact]
    public async Task LayersToTransform_beyond_the_checkpoint_layers_is_LORA0010()
    {
        var d = Assert.Single(await Diagnostics("""[Lora(Targets = "q_proj", LayersToTransform = new[] { 0, 2, 5 })]""", Header()));
        Assert.Equal("LORA0010", d.Id);
        Assert.Equal($"[Lora] on 'M': LayersToTransform contains 2, 5, but checkpoint '{Dir}' has 2 layers (num_hidden_layers in config.json): indices go from 0 to 1", Message(d));
        Assert.Equal("new[] { 0, 2, 5 }", d.Location.SourceTree!.ToString().Substring(d.Location.SourceSpan.Start, d.Location.SourceSpan.Length));
    }

    [Fact]
    public async Task Missing_target_weights_are_LORA0011_naming_them()
    {
        var header = Header();
        header.Remove("model.layers.1.self_attn.v_proj.weight");
        header.Remove("model.layers.0.self_attn.v_proj.weight");
        var d = Assert.Single(await Diagnostics("""[Lora(Targets = "q_proj|v_proj")]""", header));
        Assert.Equal("LORA0011", d.Id);
        Assert.Equal(DiagnosticSeverity.Error, d.Severity);
        Assert.Equal($"[Lora] on 'M': checkpoint '{Dir}' has no weight for 2 target(s): model.layers.0.self_attn.v_proj.weight, model.layers.1.self_attn.v_proj.weight", Message(d));
    }

    [Fact]
    public async Task A_checkpoint_with_fewer_layers_than_config_json_says_is_LORA0011()
    {
        var header = Header();
        foreach (var key in header.Select(p => p.Key).Where(k => k.StartsWith("model.layers.1.", StringComparison.Ordinal)).ToList())
            header.Remove(key);
        var d = Assert.Single(await Diagnostics("""[Lora(Targets = "q_proj")]""", header));
        Assert.Equal("LORA0011", d.Id);
        Assert.EndsWith("1 target(s): model.layers.1.self_attn.q_proj.weight", Message(d), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_weight_that_is_not_2D_or_an_embedding_of_the_wrong_vocab_is_LORA0012()
    {
        var header = Header();
        header["model.layers.0.self_attn.q_proj.weight"]!["shape"] = new JsonArray(4096);
        header["model.embed_tokens.weight"]!["shape"] = new JsonArray(321, 64);
        var d = Assert.Single(await Diagnostics("""[Lora(Targets = "embed_tokens|q_proj")]""", header));
        Assert.Equal("LORA0012", d.Id);
        Assert.Equal($"[Lora] on 'M': checkpoint '{Dir}': 'model.embed_tokens.weight' has shape (321, 64), but an embedding table of vocab_size 320 has 320 rows, 'model.layers.0.self_attn.q_proj.weight' has shape (4096), not the 2-D weight of a linear layer", Message(d));
    }

    [Fact]
    public async Task A_sharded_index_is_checked_by_name()
    {
        var weightMap = new JsonObject();
        foreach (var key in Header().Select(p => p.Key).Where(k => k != "__metadata__" && k != "model.layers.1.self_attn.q_proj.weight"))
            weightMap[key] = "model-00001-of-00001.safetensors";
        var index = new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = weightMap };
        var files = new[] { Config(), new InMemoryAdditionalText(Dir + "/model.safetensors.index.json", index.ToJsonString()) };
        var d = Assert.Single(await Run("""[Lora(Targets = "q_proj")]""", files));
        Assert.Equal("LORA0011", d.Id);
        Assert.EndsWith("model.layers.1.self_attn.q_proj.weight", Message(d), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_of_another_architecture_are_not_checked_and_unreadable_metadata_is_a_warning()
    {
        Assert.Empty(await Run("""[Lora(Targets = "c_attn")]""", [Config(), HeaderText(Header())], baseType: "Gpt2LMHeadModel"));

        var d = Assert.Single(await Run("""[Lora(Targets = "q_proj")]""", [new InMemoryAdditionalText(Dir + "/config.json", "{ \"num_hidden_layers\": "), HeaderText(Header())]));
        Assert.Equal("LORA0013", d.Id);
        Assert.Equal(DiagnosticSeverity.Warning, d.Severity);
    }

    [Fact]
    public async Task Invalid_plans_are_left_to_the_other_rules()
    {
        var output = TestCompilation.Create(Usings + """[Lora(Targets = "x_proj")] public partial class M : LlamaForCausalLM { }""");
        var diagnostics = await output.WithAnalyzers([new LoraCheckpointAnalyzer()], new AnalyzerOptions([Config(), HeaderText(Header())])).GetAnalyzerDiagnosticsAsync();
        Assert.Empty(diagnostics);
    }

    private static Task<ImmutableArray<Diagnostic>> Diagnostics(string attribute, JsonObject header) =>
        Run(attribute, [Config(), HeaderText(header)]);

    private static async Task<ImmutableArray<Diagnostic>> Run(string attribute, AdditionalText[] files, string baseType = "LlamaForCausalLM")
    {
        var (_, output) = TestCompilation.Run(TestCompilation.Create(Usings + attribute + $" public partial class M : {baseType} {{ }}"));
        Assert.Empty(output.GetDiagnostics().Where(d => d.Severity == DiagnosticSeverity.Error));
        var options = new AnalyzerOptions([.. files]);
        return await output.WithAnalyzers([.. AnalyzerRunner.All], options).GetAnalyzerDiagnosticsAsync();
    }

    private static InMemoryAdditionalText Config() =>
        new(Dir + "/config.json", File.ReadAllText(Path.Combine(Base, "config.json")));

    private static InMemoryAdditionalText HeaderText(JsonObject header) =>
        new(Dir + "/model.safetensors.header.json", header.ToJsonString());

    /// <summary>The JSON header of the fixture's model.safetensors (u64 little-endian length, then the header).</summary>
    private static JsonObject Header()
    {
        using var file = File.OpenRead(Path.Combine(Base, "model.safetensors"));
        Span<byte> length = stackalloc byte[8];
        file.ReadExactly(length);
        var bytes = new byte[BinaryPrimitives.ReadUInt64LittleEndian(length)];
        file.ReadExactly(bytes);
        return JsonNode.Parse(Encoding.UTF8.GetString(bytes))!.AsObject();
    }

    private static string Message(Diagnostic d) => d.GetMessage(CultureInfo.InvariantCulture);
}
