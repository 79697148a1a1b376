using System.Text.Json.Nodes;
using Lora.Peft;
using Lora.Tuners.LoRA;

namespace Lora.Runtime.Tests.Adapters;

public class PeftConfigFileTests
{
    [Theory]
    [InlineData("llama_qv", 8, 16, false, false)]
    [InlineData("qwen2_all_linear", 8, 16, false, false)]
    [InlineData("gpt2_c_attn", 8, 16, false, false)]
    [InlineData("llama_rslora_all", 8, 16, true, false)]
    [InlineData("llama_dora_qv", 4, 8, false, true)]
    [InlineData("llama_regex_layer0", 2, 32, false, false)]
    public void Reads_every_fixture_config_without_warnings(string @case, int r, double alpha, bool rslora, bool dora)
    {
        var warnings = new List<string>();
        var config = PeftConfigFile.Read<LoraConfig>(Fixtures.Peft(@case, "adapter"), warnings.Add);
        Assert.Empty(warnings);
        Assert.Equal(r, config.R);
        Assert.Equal(alpha, config.LoraAlpha);
        Assert.Equal(rslora, config.UseRsLora);
        Assert.Equal(dora, config.UseDora);
        Assert.Equal("false", config.InitLoraWeights);
        Assert.Equal(@case == "gpt2_c_attn", config.FanInFanOut);
    }

    [Fact]
    public void Regex_targets_full_match_the_dotted_path()
    {
        var config = PeftConfigFile.Read<LoraConfig>(Fixtures.Peft("llama_regex_layer0", "adapter"));
        Assert.True(config.IsTarget("model.layers.0.self_attn.q_proj"));
        Assert.True(config.IsTarget("model.layers.0.self_attn.k_proj"));
        Assert.False(config.IsTarget("model.layers.0.self_attn.v_proj"));
        Assert.False(config.IsTarget("model.layers.10.self_attn.q_proj"));
        Assert.False(config.IsTarget("model.layers.0.self_attn.q_proj.extra"));
    }

    [Fact]
    public void List_targets_match_exact_names_or_dotted_suffixes()
    {
        var config = new LoraConfig { TargetModules = TargetModules.FromNames(["q_proj", "mlp.down_proj"]) };
        Assert.True(config.IsTarget("model.layers.1.self_attn.q_proj"));
        Assert.True(config.IsTarget("q_proj"));
        Assert.True(config.IsTarget("model.layers.1.mlp.down_proj"));
        Assert.False(config.IsTarget("model.layers.1.self_attn.xq_proj"));
        Assert.False(config.IsTarget("model.layers.1.down_proj"));
    }

    [Fact]
    public void Layers_to_transform_and_patterns_follow_peft()
    {
        var config = new LoraConfig
        {
            TargetModules = TargetModules.FromNames(["q_proj"]),
            LayersToTransform = new LayerSelection([1], ["layers"]),
        };
        Assert.True(config.IsTarget("model.layers.1.self_attn.q_proj"));
        Assert.False(config.IsTarget("model.layers.0.self_attn.q_proj"));
        Assert.False(config.IsTarget("model.layers.11.self_attn.q_proj"));
    }

    [Fact]
    public void Rank_and_alpha_patterns_pick_the_first_matching_key()
    {
        var config = new LoraConfig
        {
            R = 8,
            LoraAlpha = 16,
            RankPattern = new Dictionary<string, int> { ["q_proj"] = 4, ["layers.1.self_attn.v_proj"] = 2 },
            AlphaPattern = new Dictionary<string, double> { ["v_proj"] = 4 },
        };
        Assert.Equal((4, 16.0), config.RankAndAlphaFor("model.layers.0.self_attn.q_proj"));
        Assert.Equal((2, 4.0), config.RankAndAlphaFor("model.layers.1.self_attn.v_proj"));
        Assert.Equal((8, 4.0), config.RankAndAlphaFor("model.layers.0.self_attn.v_proj"));
        Assert.Equal(16.0 / 4, config.ScalingFor("model.layers.0.self_attn.q_proj"));
        Assert.Equal(16.0 / Math.Sqrt(8), (config with { UseRsLora = true }).ScalingFor("model.layers.0.self_attn.k_proj"), 12);
    }

    [Fact]
    public void Written_config_has_every_core_field_sorted_with_indent_two_and_reads_back()
    {
        var dir = Fixtures.TempDirectory();
        var config = new LoraConfig
        {
            R = 16,
            LoraAlpha = 32,
            LoraDropout = 0.05,
            TargetModules = TargetModules.FromNames(["v_proj", "q_proj"]),
            UseRsLora = true,
        };
        PeftConfigFile.Write(dir, config);
        var text = File.ReadAllText(Path.Combine(dir, PeftConfigFile.FileName));
        Assert.StartsWith("{\n  \"alpha_pattern\": {},\n", text, StringComparison.Ordinal);
        var root = JsonNode.Parse(text)!.AsObject();
        var keys = root.Select(p => p.Key).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
        foreach (var core in new[] { "peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "fan_in_fan_out", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "exclude_modules", "lora_bias", "base_model_name_or_path", "revision", "peft_version", "inference_mode" })
            Assert.True(root.ContainsKey(core), core);
        Assert.Equal("LORA", (string?)root["peft_type"]);
        Assert.Equal(32, (int)root["lora_alpha"]!);
        Assert.Equal(new[] { "q_proj", "v_proj" }, root["target_modules"]!.AsArray().Select(n => (string?)n));

        var back = PeftConfigFile.Read<LoraConfig>(dir);
        Assert.Equal(16, back.R);
        Assert.Equal(0.05, back.LoraDropout);
        Assert.True(back.UseRsLora);
        Assert.True(back.IsTarget("model.layers.0.self_attn.q_proj"));
    }

    [Theory]
    [InlineData("{\"r\": 8}", "peft_type")]
    [InlineData("{\"peft_type\": \"ADALORA\"}", "\"ADALORA\"")]
    [InlineData("{\"peft_type\": \"LORA\", \"use_qalora\": true}", "use_qalora")]
    [InlineData("{\"peft_type\": \"LORA\", \"bias\": \"some\"}", "\"bias\"")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 0}", "\"r\" must be > 0")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": \"eight\"}", "wrong type")]
    [InlineData("{\"peft_type\": \"LORA\",", "not valid JSON")]
    public void Bad_configs_fail_loudly_naming_the_field(string json, string expected)
    {
        var dir = Fixtures.TempDirectory();
        File.WriteAllText(Path.Combine(dir, PeftConfigFile.FileName), json);
        var e = Assert.Throws<LoraException>(() => PeftConfigFile.Read<LoraConfig>(dir));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains(PeftConfigFile.FileName, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_keys_are_tolerated_with_a_warning()
    {
        var dir = Fixtures.TempDirectory();
        File.WriteAllText(Path.Combine(dir, PeftConfigFile.FileName), "{\"peft_type\": \"LORA\", \"future_option\": 3}");
        var warnings = new List<string>();
        PeftConfigFile.Read<LoraConfig>(dir, warnings.Add);
        Assert.Contains(warnings, w => w.Contains("future_option", StringComparison.Ordinal));
    }
}
