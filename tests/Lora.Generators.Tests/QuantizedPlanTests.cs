using Lora.Models;
using Lora.Modules;
using Lora.Modules.Bases;
using Lora.Quantization;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generators.Tests;

// QLoRA declared at build time: LoRA on every projection of an NF4 base with double quantization.
[Lora(R = 8, Alpha = 16, Targets = "all-linear")]
[Quantize(QuantizationType.Nf4, DoubleQuant = true)]
public partial class LlamaQlora : LlamaForCausalLM
{
}

// The MLP's down projections train in full (modules_to_save): they must stay dense.
[Lora(R = 8, Alpha = 16, Targets = "q_proj|v_proj", ModulesToSave = new[] { "down_proj" })]
[Quantize(QuantizationType.Nf4, DoubleQuant = true)]
public partial class LlamaQloraSavedMlp : LlamaForCausalLM
{
}

/// <summary>
/// <c>[Quantize]</c> through the generated members on the llama_qv fixture checkpoint: the generated
/// <c>FromPretrained</c> quantizes as declared (every target on a 4-bit base, the output head dense), a
/// <c>quantization</c> argument replaces the declaration, plans without <c>[Quantize]</c> load dense unless given one
/// (and keep their adapters: the generated method, not <c>CausalLM</c>'s, is called), and modules_to_save stay dense
/// whatever the config.
/// </summary>
[Collection(TorchCollection.Name)]
public class QuantizedPlanTests
{
    private static string Base => Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_qv", "base");

    private static readonly QuantizationConfig Nf4DoubleQuant = new() { Type = QuantizationType.Nf4, DoubleQuant = true };

    private static List<string> QuantizedPaths(nn.Module model) =>
        ModelQuantizer.QuantizedLayers(model).Select(l => l.Path).Order(StringComparer.Ordinal).ToList();

    private static Tensor Ids()
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(AppContext.BaseDirectory, "fixtures", "peft", "llama_qv", "expected.safetensors"));
        return expected.Load("input_ids");
    }

    [Fact]
    public void DeclaredQuantization_is_the_attributes_config()
    {
        Assert.Equal(new QuantizeAttribute(QuantizationType.Nf4) { DoubleQuant = true }.ToConfig(), LlamaQlora.DeclaredQuantization);
        Assert.Equal(Nf4DoubleQuant, LlamaQlora.DeclaredQuantization);
        Assert.Null(LlamaQlora.DeclaredQuantization.SkipModules);
    }

    [Fact]
    public void Generated_FromPretrained_puts_every_target_on_a_4bit_base_and_keeps_the_head_dense()
    {
        using var scope = NewDisposeScope();
        using var model = LlamaQlora.FromPretrained(Base);

        Assert.Equal(LlamaQlora.DeclaredQuantization, model.Quantization);
        var targets = model.AdapterTargets().Select(t => t.Path).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(14, targets.Count);
        Assert.Equal(targets, QuantizedPaths(model));
        Assert.All(ModelQuantizer.QuantizedLayers(model), l =>
        {
            var fourBit = Assert.IsType<FourBitLinear>(l.Base);
            Assert.Equal(QuantizationType.Nf4, fourBit.Type);
            Assert.True(fourBit.QuantizedWeight.DoubleQuant, l.Path);
            Assert.Equal(64, fourBit.QuantizedWeight.Blocksize);
        });
        Assert.IsType<DenseLinear>(Assert.IsType<LinearLayer>(model.OutputHead).Base);

        // The adapters are on the quantized layers, and the model runs.
        Assert.Equal(targets, model.AdapterParameters().Select(p => p.HostPath).Distinct().Order(StringComparer.Ordinal));
        using (no_grad())
            Assert.True(model.Forward(Ids()).isfinite().all().item<bool>());
    }

    [Fact]
    public void A_null_quantization_uses_the_declared_one_and_an_argument_replaces_it()
    {
        using var scope = NewDisposeScope();
        using (var declared = LlamaQlora.FromPretrained(Base, quantization: null))
        {
            Assert.Equal(LlamaQlora.DeclaredQuantization, declared.Quantization);
            Assert.Equal(14, QuantizedPaths(declared).Count);
            Assert.All(ModelQuantizer.QuantizedLayers(declared), l => Assert.True(((FourBitLinear)l.Base).QuantizedWeight.DoubleQuant));
        }

        using (var int8 = LlamaQlora.FromPretrained(Base, quantization: QuantizationConfig.Int8))
        {
            Assert.Equal(QuantizationConfig.Int8, int8.Quantization);
            Assert.Equal(14, QuantizedPaths(int8).Count);
            Assert.All(ModelQuantizer.QuantizedLayers(int8), l => Assert.IsType<Int8Linear>(l.Base));
            Assert.Equal(14, int8.AdapterTargets().Count);
        }

        var fp4 = new QuantizationConfig { Type = QuantizationType.Fp4, Blocksize = 32 };
        using var overridden = LlamaQlora.FromPretrained(Base, ScalarType.Float32, null, fp4);
        Assert.Equal(fp4, overridden.Quantization);
        Assert.All(ModelQuantizer.QuantizedLayers(overridden), l =>
        {
            var fourBit = Assert.IsType<FourBitLinear>(l.Base);
            Assert.Equal((QuantizationType.Fp4, false, 32), (fourBit.Type, fourBit.QuantizedWeight.DoubleQuant, fourBit.QuantizedWeight.Blocksize));
        });
    }

    [Fact]
    public void A_plan_without_Quantize_loads_dense_unless_given_a_quantization_and_keeps_its_adapters()
    {
        using var scope = NewDisposeScope();
        using (var dense = LlamaQvLora.FromPretrained(Base))
        {
            Assert.Null(dense.Quantization);
            Assert.Empty(QuantizedPaths(dense));
        }

        // Binds to the generated FromPretrained (typed LlamaQvLora, adapters injected), not to LlamaForCausalLM's.
        using LlamaQvLora quantized = LlamaQvLora.FromPretrained(Base, quantization: Nf4DoubleQuant);
        Assert.Equal(Nf4DoubleQuant, quantized.Quantization);
        Assert.Equal(14, QuantizedPaths(quantized).Count);
        Assert.Equal(8, quantized.AdapterParameters().Count());
        Assert.All(quantized.AdapterTargets(), t => Assert.Contains(t.Path, QuantizedPaths(quantized)));
    }

    [Fact]
    public void Modules_to_save_stay_dense_with_the_declared_and_with_a_given_quantization()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(["lm_head", "down_proj"], LlamaQloraSavedMlp.DeclaredQuantization.SkipModules);
        string[] mlpDown = ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"];

        foreach (var given in new[] { null, QuantizationConfig.QLoRA, QuantizationConfig.Int8 })
        {
            using var model = LlamaQloraSavedMlp.FromPretrained(Base, quantization: given);
            var quantized = QuantizedPaths(model);
            Assert.Equal(12, quantized.Count);
            Assert.All(mlpDown, path => Assert.DoesNotContain(path, quantized));
            var modules = model.named_modules().ToDictionary(m => m.name, m => m.module);
            Assert.All(mlpDown, path => Assert.IsType<DenseLinear>(((LinearLayer)modules[path]).Base));
            Assert.Contains("down_proj", model.Quantization!.SkipModules!);

            // They train in full and are saved with the adapter.
            var trainable = model.MarkAdaptersTrainable().Select(p => p.Name).ToList();
            Assert.All(mlpDown, path => Assert.Contains(path + ".weight", trainable));
        }

        using var saved = LlamaQloraSavedMlp.FromPretrained(Base);
        var dir = Path.Combine(Path.GetTempPath(), "lora-gen-tests", Guid.NewGuid().ToString("N"));
        saved.SaveAdapter(dir);
        using var file = SafeTensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        Assert.All(mlpDown, path => Assert.Contains("base_model.model." + path + ".weight", file.Tensors.Keys));
    }

    [Fact]
    public void A_declared_qlora_model_trains_and_saves_a_peft_adapter()
    {
        using var scope = NewDisposeScope();
        var ids = Ids();
        var examples = Enumerable.Range(0, (int)ids.shape[0])
            .Select(r => Lora.Data.TokenizedExample.FromIds(ids[r].data<long>().Select(v => (int)v).ToArray()))
            .ToList();
        using var model = LlamaQlora.FromPretrained(Base);
        var outDir = Path.Combine(Path.GetTempPath(), "lora-gen-tests", Guid.NewGuid().ToString("N"));
        var result = model.TrainAdapter(examples, new Lora.Training.TrainingOptions
        {
            LearningRate = 1e-2,
            MaxSteps = 6,
            BatchSize = examples.Count,
            Sampling = Lora.Data.SamplingStrategy.Sequential,
            LoggingSteps = 1,
            SaveSteps = 0,
        }, outDir);
        var losses = result.LogHistory.Where(r => !r.IsEval).Select(r => r.Loss!.Value).ToList();
        Assert.True(losses[^1] < losses[0], $"{losses[0]} → {losses[^1]}");
        Assert.Equal(14, QuantizedPaths(model).Count); // still 4-bit: only the adapter trained
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        Assert.Equal(7, Lora.Peft.PeftConfigFile.Read<Lora.Tuners.LoRA.LoraConfig>(outDir).TargetModules!.Names!.Count);
    }
}
