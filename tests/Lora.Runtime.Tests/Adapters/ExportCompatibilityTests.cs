using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Models;
using Lora.Runtime.Tests.Models;
using Lora.SafeTensors;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Adapters;

public class ExportCompatibilityTests
{
    [Fact]
    public void Warns_about_what_vllm_and_llama_cpp_reject()
    {
        var config = new LoraConfig { R = 128, UseDora = true, UseRsLora = true, Bias = LoraBias.All, ModulesToSave = ["lm_head"] };
        var warnings = ExportCompatibility.Warnings(config);
        Assert.Contains(warnings, w => w.Contains("DoRA", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("modules_to_save", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("biases", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("max_lora_rank", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("llama.cpp applies lora_alpha / r", StringComparison.Ordinal));
        Assert.Single(ExportCompatibility.Warnings(new LoraConfig { BaseModelNameOrPath = null }));
    }

    [Fact]
    public void Baked_rslora_adapter_gives_the_same_logits_with_plain_alpha_over_r()
    {
        using var scope = NewDisposeScope();
        using var model = CausalLM.FromPretrained(Fixtures.Peft("llama_rslora_all", "base"));
        var config = PeftAdapter.Load<LoraConfig>(model, Fixtures.Peft("llama_rslora_all", "adapter"));
        var dir = Fixtures.TempDirectory();
        ExportCompatibility.SaveWithBakedScaling(model, dir, config);
        var baked = PeftConfigFile.Read<LoraConfig>(dir);
        Assert.False(baked.UseRsLora);
        Assert.Equal(baked.R, baked.LoraAlpha);

        using var fresh = CausalLM.FromPretrained(Fixtures.Peft("llama_rslora_all", "base"));
        PeftAdapter.Load<LoraConfig>(fresh, dir);
        using var expected = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_rslora_all"), "expected.safetensors"));
        using var noGrad = no_grad();
        LogitsAssert.Close(fresh.Forward(expected.Load("input_ids")), expected.Load("adapter_logits"), what: "baked");
    }
}
