using System.Text.Json;
using Lora.Data;
using Lora.Models;
using Lora.Modules;
using Lora.Modules.Bases;
using Lora.Peft;
using Lora.Quantization;
using Lora.Runtime.Tests.Models;
using Lora.Runtime.Tests.Training;
using Lora.SafeTensors;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Quantization;

/// <summary>Quantized models: loading (quantize-on-load and bitsandbytes pre-quantized files), adapters of every
/// method on quantized bases, gradients, QLoRA training, saving and the two ways of merging.</summary>
[Collection(TrainerCollection.Name)]
public class QuantizedModelTests
{
    private static readonly QuantizationConfig Nf4Dq = new() { Type = QuantizationType.Nf4, DoubleQuant = true };

    /// <summary>The same checkpoint entries, bit for bit.</summary>
    private static void AssertSameState(CausalLM expected, CausalLM actual, string what)
    {
        var a = PretrainedWriter.StateDict(expected).ToDictionary(t => t.Key, t => t.Value);
        var b = PretrainedWriter.StateDict(actual).ToDictionary(t => t.Key, t => t.Value);
        Assert.Equal(a.Keys.Order(StringComparer.Ordinal), b.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, value) in a)
            Assert.True(Bits.Equal(b[key], value), $"{key} differs ({what})");
    }

    private static Tensor Ids(string @case)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft(@case), "expected.safetensors"));
        return expected.Load("input_ids");
    }

    [Theory]
    [InlineData("llama_qv")]
    [InlineData("qwen2_all_linear")]
    [InlineData("gpt2_c_attn")]
    public void Quantize_on_load_equals_quantizing_the_loaded_dense_model(string @case)
    {
        using var scope = NewDisposeScope();
        using var onLoad = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"), quantization: Nf4Dq);
        using var inMemory = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"));
        var paths = ModelQuantizer.Quantize(inMemory, Nf4Dq);

        Assert.Equal(Nf4Dq, onLoad.Quantization);
        Assert.Equal(paths, ModelQuantizer.QuantizedLayers(onLoad).Select(l => l.Path));
        Assert.DoesNotContain("lm_head", paths);
        Assert.All(ModelQuantizer.QuantizedLayers(onLoad), l => Assert.IsType<FourBitLinear>(l.Base));
        AssertSameState(inMemory, onLoad, "quantized on load vs in memory");
    }

    [Theory]
    [InlineData(QuantizationType.Nf4, true)]
    [InlineData(QuantizationType.Fp4, false)]
    [InlineData(QuantizationType.Int8, false)]
    public void A_quantized_model_computes_what_the_dense_model_of_its_dequantized_weights_computes(QuantizationType type, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        var config = new QuantizationConfig { Type = type, DoubleQuant = doubleQuant, Int8Threshold = 0 };
        using var quantized = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"), quantization: config);
        using var dense = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"), quantization: config);
        ModelQuantizer.Dequantize(dense);
        Assert.Null(dense.Quantization);
        Assert.Empty(ModelQuantizer.QuantizedLayers(dense));
        using var noGrad = no_grad();
        var ids = Ids("qwen2_all_linear");
        var expected = dense.Forward(ids);
        var actual = quantized.Forward(ids);
        // 4-bit: the same dense matmul after dequantization. int8 quantizes the activations too: LLM.int8()'s error.
        LogitsAssert.Close(actual, expected, rtol: type == QuantizationType.Int8 ? 5e-2 : 1e-5, what: $"{type} vs its dequantized weights");
        // And close to the original model, within the quantization error.
        using var original = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"));
        LogitsAssert.Close(actual, original.Forward(ids), rtol: 0.3, what: $"{type} vs the fp32 model");
    }

    [Theory]
    [InlineData("llama_qv")]        // LoRA
    [InlineData("llama_rslora_all")] // rsLoRA on every linear layer
    [InlineData("llama_dora_qv")]   // DoRA
    [InlineData("llama_ia3")]       // IA3
    public void Adapters_of_every_method_sit_on_a_quantized_base_as_on_the_dense_one(string @case)
    {
        using var scope = NewDisposeScope();
        using var quantized = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"), quantization: Nf4Dq);
        using var dense = CausalLM.FromPretrained(Fixtures.Peft(@case, "base"), quantization: Nf4Dq);
        ModelQuantizer.Dequantize(dense);
        PeftAdapter.Load(quantized, Fixtures.Peft(@case, "adapter"));
        PeftAdapter.Load(dense, Fixtures.Peft(@case, "adapter"));
        using var noGrad = no_grad();
        var ids = Ids(@case);
        LogitsAssert.Close(quantized.Forward(ids), dense.Forward(ids), rtol: 1e-5, what: $"{@case} on NF4 vs on its dequantized weights");
    }

    [Fact]
    public void Gradients_reach_the_input_and_never_the_quantized_weight()
    {
        using var scope = NewDisposeScope();
        var w = randn([48, 64], generator: new Generator(5)) * 0.1;
        var bias = new TorchSharp.Modules.Parameter(randn([48], generator: new Generator(6)), requires_grad: false);
        var layer = new LinearLayer(new FourBitLinear(FourBitWeight.Quantize(w, QuantizationType.Nf4), bias, ScalarType.Float32));
        Assert.Equal(["bias"], layer.named_parameters().Select(p => p.name));
        Assert.Equal(["weight", "weight.absmax", "weight.quant_map"], layer.named_buffers().Select(b => b.name));
        var x = randn([3, 5, 64], generator: new Generator(7)).requires_grad_(true);
        var upstream = randn([3, 5, 48], generator: new Generator(8));
        layer.forward(x).backward([upstream]);
        GradientCheckpoint.ReleasePending();
        var expected = upstream.matmul(layer.Base.Weight());
        Assert.True(x.grad!.allclose(expected, 1e-5, 1e-6), "dL/dx = upstream · dequant(W)");
        Assert.All(layer.named_buffers(), b => Assert.False(b.buffer.requires_grad));
    }

    [Theory]
    [InlineData("nf4")]
    [InlineData("int8")]
    public void A_trainable_bias_of_a_quantized_base_gets_the_summed_upstream_gradient(string kind)
    {
        // (PEFT's bias="all" trains base biases; a bare .sum(0) once bound to sum(ScalarType) and returned a scalar.)
        using var scope = NewDisposeScope();
        var w = randn([48, 64], generator: new Generator(5)) * 0.1;
        var bias = new TorchSharp.Modules.Parameter(randn([48], generator: new Generator(6)), requires_grad: true);
        LinearBase linear = kind == "nf4"
            ? new FourBitLinear(FourBitWeight.Quantize(w, QuantizationType.Nf4), bias, ScalarType.Float32)
            : new Int8Linear(Int8Weight.Quantize(w), bias, 6.0);
        var layer = new LinearLayer(linear);
        var upstream = randn([3, 5, 48], generator: new Generator(8));
        layer.forward(randn([3, 5, 64], generator: new Generator(7)).requires_grad_(true)).backward([upstream]);
        GradientCheckpoint.ReleasePending();
        Assert.Equal([48], bias.grad!.shape);
        Assert.True(bias.grad.allclose(upstream.reshape(-1, 48).sum(dim: 0), 1e-5, 1e-5), "dL/db = Σ upstream");
    }

    [Fact]
    public void Qlora_trains_like_lora_and_its_adapter_is_saved_in_peft_format()
    {
        var (qloraLosses, qloraDir) = TrainAllLinear(QuantizationConfig.QLoRA with { ComputeDType = ScalarType.Float32 });
        var (loraLosses, _) = TrainAllLinear(null);
        // Same seed, data and adapter init: the 4-bit base follows the dense run's curve within its rounding.
        Assert.True(qloraLosses[^1] < qloraLosses[0] * 0.9, $"QLoRA loss {qloraLosses[0]:F4} → {qloraLosses[^1]:F4}");
        Assert.True(Math.Abs(qloraLosses[^1] - loraLosses[^1]) < 0.1 * loraLosses[^1], $"QLoRA {qloraLosses[^1]:F4} vs LoRA {loraLosses[^1]:F4}");

        using var saved = SafeTensorsFile.Open(Path.Combine(qloraDir, PeftAdapter.WeightsFileName));
        Assert.All(saved.Tensors.Keys, k => Assert.Matches(@"^base_model\.model\.model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.lora_[AB]\.weight$", k));
        var adapterConfig = JsonDocument.Parse(File.ReadAllText(Path.Combine(qloraDir, PeftConfigFile.FileName))).RootElement;
        Assert.Equal("LORA", adapterConfig.GetProperty("peft_type").GetString());
        // The adapter loads on the dense base too (PEFT's format does not record the quantization).
        using var dense = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        PeftAdapter.Load(dense, qloraDir);
    }

    [Fact]
    public void Qlora_with_gradient_checkpointing_gives_the_same_run()
    {
        var (plain, _) = TrainAllLinear(Nf4Dq, steps: 3);
        var (checkpointed, _) = TrainAllLinear(Nf4Dq, steps: 3, gradientCheckpointing: true);
        Assert.Equal(plain.Count, checkpointed.Count);
        for (var i = 0; i < plain.Count; i++)
            TrainerFixtures.Relative(plain[i], checkpointed[i], 1e-5, $"loss {i}");
    }

    private static (List<double> Losses, string Directory) TrainAllLinear(QuantizationConfig? quantization, int steps = 12, bool gradientCheckpointing = false)
    {
        var data = TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);
        using var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"), quantization: quantization);
        var config = new LoraConfig { R = 8, LoraAlpha = 16, LoraDropout = 0, TargetModules = TargetModules.AllLinear };
        torch.manual_seed(1);
        PeftInjector.Inject(model, config);
        var outDir = Fixtures.TempDirectory();
        var options = new TrainingOptions { LearningRate = 1e-2, MaxSteps = steps, BatchSize = 2, LoggingSteps = 1, SaveSteps = 0, Seed = 1, Sampling = SamplingStrategy.Sequential, GradientCheckpointing = gradientCheckpointing };
        TrainingResult result;
        using (var trainer = new Trainer(model, options, outDir, data, adapterConfig: config))
            result = trainer.Train();
        if (quantization is not null)
        {
            // Only adapter weights trained; the base stayed frozen and 4-bit.
            Assert.All(model.named_parameters().Where(p => p.parameter.requires_grad), p => Assert.Contains(".lora_", p.name));
            Assert.Equal(7 * model.Config.NumLayers, ModelQuantizer.QuantizedLayers(model).Count());
        }

        return (result.LogHistory.Where(e => e.Loss is not null).Select(e => e.Loss!.Value).ToList(), outDir);
    }

    [Theory]
    [InlineData(QuantizationType.Nf4, true)]
    [InlineData(QuantizationType.Fp4, false)]
    [InlineData(QuantizationType.Int8, false)]
    public void A_saved_bitsandbytes_checkpoint_reloads_bit_for_bit(QuantizationType type, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        var config = new QuantizationConfig { Type = type, DoubleQuant = doubleQuant, ComputeDType = ScalarType.BFloat16 };
        using var model = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"), quantization: config);
        var dir = Path.Combine(Fixtures.TempDirectory(), "quantized");
        PretrainedWriter.Save(model, Fixtures.Peft("qwen2_all_linear", "base"), dir);

        // bitsandbytes' keys and dtypes, and transformers' quantization_config.
        using (var file = SafeTensorsFile.Open(Path.Combine(dir, SafeTensorsCheckpoint.SingleFileName)))
        {
            const string q = "model.layers.0.self_attn.q_proj";
            if (type == QuantizationType.Int8)
            {
                Assert.Equal(SafeTensorsDType.I8, file.Tensors[$"{q}.weight"].DType);
                Assert.Equal(SafeTensorsDType.F32, file.Tensors[$"{q}.SCB"].DType);
                Assert.Equal(SafeTensorsDType.U8, file.Tensors[$"{q}.weight_format"].DType);
                Assert.Empty(file.Tensors[$"{q}.weight_format"].Shape);
            }
            else
            {
                Assert.Equal(SafeTensorsDType.U8, file.Tensors[$"{q}.weight"].DType);
                Assert.Equal(doubleQuant ? SafeTensorsDType.U8 : SafeTensorsDType.F32, file.Tensors[$"{q}.weight.absmax"].DType);
                Assert.Equal(doubleQuant, file.Tensors.ContainsKey($"{q}.weight.nested_absmax"));
                Assert.True(file.Tensors.ContainsKey($"{q}.weight.quant_state.bitsandbytes__{type.Name()}"));
            }

            Assert.Equal(SafeTensorsDType.F32, file.Tensors[$"{q}.bias"].DType);
            Assert.Equal(SafeTensorsDType.F32, file.Tensors["model.embed_tokens.weight"].DType);
            Assert.False(file.Tensors.ContainsKey("lm_head.weight")); // tied, written once
        }

        var written = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.GetProperty("quantization_config");
        Assert.Equal("bitsandbytes", written.GetProperty("quant_method").GetString());
        Assert.Equal(type != QuantizationType.Int8, written.GetProperty("load_in_4bit").GetBoolean());
        Assert.Equal(type == QuantizationType.Int8, written.GetProperty("load_in_8bit").GetBoolean());
        Assert.Equal("bfloat16", written.GetProperty("bnb_4bit_compute_dtype").GetString());
        if (type != QuantizationType.Int8)
        {
            Assert.Equal(type.Name(), written.GetProperty("bnb_4bit_quant_type").GetString());
            Assert.Equal(doubleQuant, written.GetProperty("bnb_4bit_use_double_quant").GetBoolean());
        }

        // Loads quantized without being told, to the same tensors and logits.
        using var reloaded = CausalLM.FromPretrained(dir);
        Assert.Equal(config, reloaded.Quantization);
        AssertSameState(model, reloaded, "after reloading");
        using var noGrad = no_grad();
        var ids = Ids("qwen2_all_linear");
        Assert.True(Bits.Equal(reloaded.Forward(ids), model.Forward(ids)));
    }

    [Fact]
    public void Merging_into_the_quantized_base_warns_and_a_dense_export_matches_the_adapted_model()
    {
        using var scope = NewDisposeScope();
        var ids = Ids("llama_qv");
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: Nf4Dq);
        PeftAdapter.Load(model, Fixtures.Peft("llama_qv", "adapter"));
        Tensor adapted;
        using (no_grad())
            adapted = model.Forward(ids);

        // Dense export: dequantize, merge exactly, save an fp32 HF checkpoint, load it as a plain model.
        using (var exported = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: Nf4Dq))
        {
            PeftAdapter.Load(exported, Fixtures.Peft("llama_qv", "adapter"));
            ModelQuantizer.Dequantize(exported);
            var warnings = new List<string>();
            exported.MergeAndUnload(warnings: warnings.Add);
            Assert.Empty(warnings);
            var dir = Path.Combine(Fixtures.TempDirectory(), "merged");
            PretrainedWriter.Save(exported, Fixtures.Peft("llama_qv", "base"), dir);
            Assert.False(JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "config.json"))).RootElement.TryGetProperty("quantization_config", out _));
            using var plain = CausalLM.FromPretrained(dir);
            Assert.Null(plain.Quantization);
            using var noGrad = no_grad();
            // Bound: the same fp32 arithmetic up to the order of the merged sum W + BA·s (rounding, ~1e-6).
            LogitsAssert.Close(plain.Forward(ids), adapted, rtol: 1e-5, what: "dense export vs the NF4 model with its adapter");
        }

        // Merging into the 4-bit weights re-quantizes them: PEFT's warning, and outputs move by the rounding.
        var warned = new List<string>();
        model.MergeAndUnload(warnings: warned.Add);
        Assert.Single(warned);
        Assert.Contains("re-quantizes", warned[0]);
        Assert.Equal(7 * model.Config.NumLayers, ModelQuantizer.QuantizedLayers(model).Count()); // still 4-bit
        using var noGrad2 = no_grad();
        var requantized = model.Forward(ids);
        var diff = (requantized - adapted).abs().max().item<float>() / adapted.abs().max().item<float>();
        Assert.InRange(diff, 1e-7, 0.2);
    }

    [Fact]
    public void Converting_a_quantized_model_keeps_its_scales_and_tables_and_a_tied_head_stays_tied()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"), quantization: Nf4Dq);
        var before = PretrainedWriter.StateDict(model).Where(t => t.Key.Contains(".weight.")).ToDictionary(t => t.Key, t => t.Value.clone());
        model.to(ScalarType.BFloat16);
        var after = PretrainedWriter.StateDict(model).ToDictionary(t => t.Key, t => t.Value);
        foreach (var (key, value) in before)
            Assert.True(Bits.Equal(after[key], value), $"{key} changed with to(bfloat16)");
        var head = (LinearLayer)model.OutputHead!;
        Assert.Equal(ScalarType.BFloat16, head.Weight.dtype);
        Assert.Equal(ScalarType.BFloat16, ModelQuantizer.QuantizedLayers(model).First().Base.Bias!.dtype);
        Assert.Same(model.InputEmbedding!.Weight, head.Weight);
        using var noGrad = no_grad();
        Assert.Equal(ScalarType.BFloat16, model.Forward(Ids("qwen2_all_linear")).dtype);
    }

    [Fact]
    public void Kbit_preparation_freezes_everything_and_casts_what_is_not_quantized_to_fp32()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("qwen2_all_linear", "base"), ScalarType.BFloat16, quantization: QuantizationConfig.QLoRA);
        var codes = ModelQuantizer.QuantizedLayers(model).First().Base.Buffers.First().Buffer.clone();
        KbitTraining.Prepare(model);
        Assert.All(model.named_parameters(), p =>
        {
            Assert.False(p.parameter.requires_grad, p.name);
            Assert.Equal(ScalarType.Float32, p.parameter.dtype);
        });
        Assert.True(Bits.Equal(ModelQuantizer.QuantizedLayers(model).First().Base.Buffers.First().Buffer, codes));
        var four = (FourBitLinear)ModelQuantizer.QuantizedLayers(model).First().Base;
        Assert.Equal(ScalarType.BFloat16, four.ComputeDType);
        Assert.Equal(ScalarType.BFloat16, four.DType); // the weight dequantizes to the dtype it had
        using var noGrad = no_grad();
        Assert.Equal(ScalarType.Float32, model.Forward(Ids("qwen2_all_linear")).dtype);
    }

    [Fact]
    public void A_pre_quantized_checkpoint_cannot_be_loaded_as_another_format()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: Nf4Dq);
        var dir = Path.Combine(Fixtures.TempDirectory(), "nf4");
        PretrainedWriter.Save(model, Fixtures.Peft("llama_qv", "base"), dir);
        var e = Assert.Throws<LoraException>(() => CausalLM.FromPretrained(dir, quantization: QuantizationConfig.Int8));
        Assert.Contains("config.json", e.Message);
        Assert.Contains("already quantized as nf4", e.Message);
        // The same storage with another compute dtype is fine.
        using var bf16 = CausalLM.FromPretrained(dir, quantization: Nf4Dq with { ComputeDType = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, ((FourBitLinear)ModelQuantizer.QuantizedLayers(bf16).First().Base).ComputeDType);
    }

    [Fact]
    public void Skipped_modules_stay_dense()
    {
        using var scope = NewDisposeScope();
        var config = Nf4Dq.Skipping(["down_proj", "model.layers.1.self_attn"]);
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: config);
        var quantized = ModelQuantizer.QuantizedLayers(model).Select(l => l.Path).ToList();
        Assert.DoesNotContain(quantized, p => p.EndsWith("down_proj", StringComparison.Ordinal) || p.StartsWith("model.layers.1.self_attn", StringComparison.Ordinal));
        Assert.Contains("model.layers.1.mlp.up_proj", quantized);
        Assert.Contains("model.layers.0.self_attn.q_proj", quantized);
        Assert.Equal(["lm_head", "down_proj", "model.layers.1.self_attn"], config.SkipModules);
    }

    [Fact]
    public void Modules_to_save_on_a_quantized_layer_are_refused_with_the_fix()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: Nf4Dq);
        var config = new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj"]), ModulesToSave = ["down_proj"] };
        var e = Assert.Throws<LoraException>(() => PeftInjector.Inject(model, config)); // it resolves them to freeze the rest
        Assert.Contains("model.layers.0.mlp.down_proj", e.Message);
        Assert.Contains("Skipping", e.Message);

        using var skipped = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: Nf4Dq.Skipping(config.ModulesToSave!));
        PeftInjector.Inject(skipped, config);
        Assert.Contains(skipped.MarkTrainable(config), p => p.Name == "model.layers.0.mlp.down_proj.weight");
    }

    [Fact]
    public void Parameter_counts_include_the_quantized_weights_as_peft_counts_them()
    {
        using var scope = NewDisposeScope();
        using var dense = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"));
        using var quantized = CausalLM.FromPretrained(Fixtures.Peft("llama_qv", "base"), quantization: Nf4Dq);
        var config = new LoraConfig { R = 8, LoraAlpha = 16, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) };
        PeftInjector.Inject(dense, config);
        PeftInjector.Inject(quantized, config);
        dense.MarkTrainable(config);
        quantized.MarkTrainable(config);
        Assert.Equal(dense.ParameterCounts(), quantized.ParameterCounts());
        Assert.Equal(dense.TrainableParametersSummary(), quantized.TrainableParametersSummary());
    }
}
