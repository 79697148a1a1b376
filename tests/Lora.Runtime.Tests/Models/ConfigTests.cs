using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

/// <summary>config.json parsing: both rope forms, defaults, and errors naming file, field or line.</summary>
public class ConfigTests
{
    private static string WriteConfig(string json)
    {
        var dir = Fixtures.TempDirectory();
        File.WriteAllText(Path.Combine(dir, "config.json"), json);
        return dir;
    }

    private static string FixtureConfig(string @case) => File.ReadAllText(Path.Combine(Fixtures.Peft(@case, "base"), "config.json"));

    [Fact]
    public void Reads_the_fixture_configs()
    {
        var llama = Assert.IsType<LlamaConfig>(ModelConfigLoader.Load(Fixtures.Peft("llama_qv", "base")));
        Assert.Equal((64, 4, 2, 16, 176, 2, 320), (llama.HiddenSize, llama.NumHeads, llama.NumKvHeads, llama.HeadDim, llama.IntermediateSize, llama.NumLayers, llama.VocabSize));
        Assert.Equal(new RopeConfig { Theta = 10000 }, llama.Rope);
        Assert.False(llama.TieWordEmbeddings);
        Assert.Equal([2], llama.EosTokenIds);

        var qwen = Assert.IsType<Qwen2Config>(ModelConfigLoader.Load(Fixtures.Peft("qwen2_all_linear", "base")));
        Assert.Equal(16, qwen.HeadDim); // no head_dim field: hidden / heads
        Assert.True(qwen.QkvBias);
        Assert.False(qwen.OutputBias);
        Assert.True(qwen.TieWordEmbeddings);
        Assert.Null(qwen.SlidingWindow);
        Assert.Equal(1e6, qwen.Rope.Theta);

        var gpt2 = Assert.IsType<Gpt2Config>(ModelConfigLoader.Load(Fixtures.Peft("gpt2_c_attn", "base")));
        Assert.Equal((64, 4, 2, 128, 256, "gelu_new"), (gpt2.HiddenSize, gpt2.NumHeads, gpt2.NumLayers, gpt2.MaxPositions, gpt2.InnerSize, gpt2.Activation));
        Assert.True(gpt2.TieWordEmbeddings);
    }

    [Fact]
    public void Transformers_v4_rope_form_with_llama3_scaling()
    {
        // Llama 3.1 8B, as written by transformers 4.x.
        var dir = WriteConfig("""
            {"model_type": "llama", "vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
             "max_position_embeddings": 131072, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
             "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "eos_token_id": [128001, 128008, 128009], "tie_word_embeddings": false}
            """);
        var config = Assert.IsType<LlamaConfig>(ModelConfigLoader.Load(dir));
        Assert.Equal(new RopeConfig { Theta = 500000, Type = "llama3", Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositions = 8192 }, config.Rope);
        Assert.Equal(128, config.HeadDim);
        Assert.Equal([128001, 128008, 128009], config.EosTokenIds);

        // inv_freq against the Llama 3.1 formula evaluated in double precision.
        var invFreq = RotaryEmbedding.InverseFrequencies(config.Rope, config.HeadDim);
        for (var i = 0; i < invFreq.Length; i++)
        {
            var f = 1.0 / Math.Pow(500000.0, 2.0 * i / 128);
            var wavelen = 2 * Math.PI / f;
            var expected = wavelen < 8192 / 4.0 ? f
                : wavelen > 8192 / 1.0 ? f / 8
                : ((1 - (8192 / wavelen - 1) / 3) * f / 8) + ((8192 / wavelen - 1) / 3 * f);
            Assert.True(Math.Abs(invFreq[i] - expected) <= 1e-5 * expected, $"inv_freq[{i}] = {invFreq[i]}, expected {expected}");
        }

        Assert.True(invFreq[^1] < 1.0 / Math.Pow(500000.0, 126.0 / 128) / 7.9); // lowest frequency divided by 8
        Assert.Equal(1f, invFreq[0]);
    }

    [Fact]
    public void Transformers_v5_rope_parameters_with_linear_scaling()
    {
        var json = FixtureConfig("llama_qv").Replace("\"rope_type\": \"default\"", "\"rope_type\": \"linear\", \"factor\": 4.0", StringComparison.Ordinal);
        var config = (LlamaConfig)ModelConfigLoader.Load(WriteConfig(json));
        Assert.Equal(new RopeConfig { Theta = 10000, Type = "linear", Factor = 4 }, config.Rope);
        var scaled = RotaryEmbedding.InverseFrequencies(config.Rope, 16);
        var plain = RotaryEmbedding.InverseFrequencies(new RopeConfig(), 16);
        Assert.Equal(plain.Select(f => f / 4), scaled);
    }

    [Fact]
    public void Unknown_model_type_is_named()
    {
        var dir = WriteConfig(FixtureConfig("llama_qv").Replace("\"model_type\": \"llama\"", "\"model_type\": \"bert\"", StringComparison.Ordinal));
        var e = Assert.Throws<LoraException>(() => ModelConfigLoader.Load(dir));
        Assert.Contains("config.json: field 'model_type' is 'bert'", e.Message, StringComparison.Ordinal);
        Assert.Contains("llama, mistral, qwen2, gpt2", e.Message, StringComparison.Ordinal);
        Assert.Throws<LoraException>(() => CausalLM.FromPretrained(dir));
    }

    [Fact]
    public void Missing_required_field_is_named()
    {
        var dir = WriteConfig(FixtureConfig("llama_qv").Replace("\"hidden_size\": 64,", "", StringComparison.Ordinal));
        var e = Assert.Throws<LoraException>(() => ModelConfigLoader.Load(dir));
        Assert.Contains(Path.Combine(dir, "config.json"), e.Message, StringComparison.Ordinal);
        Assert.Contains("field 'hidden_size' is missing", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Ill_typed_field_is_named()
    {
        var dir = WriteConfig(FixtureConfig("gpt2_c_attn").Replace("\"n_head\": 4", "\"n_head\": \"four\"", StringComparison.Ordinal));
        var e = Assert.Throws<LoraException>(() => ModelConfigLoader.Load(dir));
        Assert.Contains("field 'n_head' must be an integer, got \"four\"", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_json_reports_the_line()
    {
        var dir = WriteConfig("{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 64 64,\n  \"vocab_size\": 1\n}\n");
        var e = Assert.Throws<LoraException>(() => ModelConfigLoader.Load(dir));
        Assert.Contains("config.json: not valid JSON (line 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_config_file_is_named()
    {
        var dir = Fixtures.TempDirectory();
        var e = Assert.Throws<LoraException>(() => ModelConfigLoader.Load(dir));
        Assert.Contains("config.json: file not found", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"rope_type\": \"default\"", "\"rope_type\": \"yarn\", \"factor\": 4.0", "field 'rope_parameters.rope_type' is 'yarn'")]
    [InlineData("\"rope_type\": \"default\"", "\"rope_type\": \"llama3\", \"factor\": 8.0", "field 'rope_parameters.low_freq_factor' is missing")]
    [InlineData("\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "field 'hidden_act' is 'gelu'")]
    [InlineData("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3", "field 'num_key_value_heads' (3) must divide num_attention_heads (4)")]
    public void Unsupported_options_are_named(string from, string to, string message)
    {
        var dir = WriteConfig(FixtureConfig("llama_qv").Replace(from, to, StringComparison.Ordinal));
        var e = Assert.Throws<LoraException>(() => ModelConfigLoader.Load(dir));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mistral_runs_up_to_its_sliding_window_and_refuses_longer_sequences()
    {
        // The llama_qv weights under model_type mistral with an 8-token window.
        var dir = Fixtures.TempDirectory();
        File.Copy(Path.Combine(Fixtures.Peft("llama_qv", "base"), "model.safetensors"), Path.Combine(dir, "model.safetensors"));
        File.WriteAllText(Path.Combine(dir, "config.json"), FixtureConfig("llama_qv")
            .Replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\", \"sliding_window\": 8", StringComparison.Ordinal));

        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        using var mistral = CausalLM.FromPretrained(dir);
        using var llama = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        Assert.Equal(8, ((LlamaConfig)mistral.Config).SlidingWindow);
        var ids = arange(1, 13, ScalarType.Int64).unsqueeze(0);
        LogitsAssert.Close(mistral.Forward(ids.narrow(1, 0, 8)), llama.Forward(ids.narrow(1, 0, 8)));
        var e = Assert.Throws<LoraException>(() => mistral.Forward(ids));
        Assert.Contains("sliding_window is 8", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Mistral_without_the_field_gets_the_transformers_default_window()
    {
        var json = FixtureConfig("llama_qv").Replace("\"model_type\": \"llama\"", "\"model_type\": \"mistral\"", StringComparison.Ordinal);
        Assert.Equal(4096, ((LlamaConfig)ModelConfigLoader.Load(WriteConfig(json))).SlidingWindow);
        var nullWindow = json.Replace("\"model_type\": \"mistral\"", "\"model_type\": \"mistral\", \"sliding_window\": null", StringComparison.Ordinal);
        Assert.Null(((LlamaConfig)ModelConfigLoader.Load(WriteConfig(nullWindow))).SlidingWindow);
    }
}
