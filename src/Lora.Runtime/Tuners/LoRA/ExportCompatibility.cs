using Lora.Peft;
using Lora.SafeTensors;
using static TorchSharp.torch;

namespace Lora.Tuners.LoRA;

/// <summary>
/// What downstream consumers accept (C18–C19), checked before an adapter leaves: vLLM refuses DoRA,
/// modules_to_save, a bias other than "none", lora_bias, and ranks above its <c>max_lora_rank</c>; llama.cpp /
/// LLamaSharp apply only α/r, so rsLoRA or per-layer patterns must be baked into B
/// (<see cref="SaveWithBakedScaling"/>).
/// </summary>
public static class ExportCompatibility
{
    /// <summary>One line per problem a consumer would have with <paramref name="config"/>.</summary>
    public static IReadOnlyList<string> Warnings(LoraConfig config, int vllmMaxLoraRank = 64)
    {
        var warnings = new List<string>();
        if (config.UseDora)
            warnings.Add("vLLM rejects DoRA adapters (use_dora); merge the adapter (lora merge) to serve it there.");
        if (config.ModulesToSave is { Count: > 0 })
            warnings.Add("vLLM rejects modules_to_save; merge the adapter to serve it there.");
        if (config.Bias != LoraBias.None || config.LoraBiasTerm)
            warnings.Add("vLLM rejects adapters with trained biases (bias != none or lora_bias).");
        var maxRank = config.RankPattern.Values.Append(config.R).Max();
        if (maxRank > vllmMaxLoraRank)
            warnings.Add($"rank {maxRank} exceeds vLLM's max_lora_rank {vllmMaxLoraRank} unless the server raises it.");
        if (config.UseRsLora || config.AlphaPattern.Count > 0 || config.RankPattern.Count > 0)
            warnings.Add("llama.cpp applies lora_alpha / r only: save with baked scaling (SaveWithBakedScaling) for rsLoRA or rank/alpha patterns.");
        if (config.BaseModelNameOrPath is null)
            warnings.Add("llama.cpp needs base_model_name_or_path in adapter_config.json (or --base when converting).");
        return warnings;
    }

    /// <summary>
    /// Saves adapter <paramref name="adapterName"/> so that plain α/r scaling reproduces it: each layer's B is
    /// multiplied by its scaling s, and the config says α = r everywhere (no rsLoRA, no alpha_pattern), so
    /// α/r = 1 and B·A is unchanged. The model itself is not modified.
    /// </summary>
    public static string SaveWithBakedScaling(nn.Module model, string root, LoraConfig config, string adapterName = PeftAdapter.DefaultName)
    {
        var baked = config with
        {
            LoraAlpha = config.R,
            UseRsLora = false,
            AlphaPattern = config.RankPattern.ToDictionary(p => p.Key, p => (double)p.Value),
        };
        var dir = PeftAdapter.DirectoryFor(root, adapterName);
        Directory.CreateDirectory(dir);
        var tensors = PeftAdapter.StateDict(model, adapterName, config);
        try
        {
            foreach (var (path, module) in model.named_modules())
            {
                if (module is not Modules.LinearLayer layer || !layer.HasAdapter(adapterName))
                    continue;
                var key = AdapterKeys.PeftPrefix + path + ".lora_B.weight";
                var scaled = tensors[key] * ((LoraAdapter)layer.Adapter(adapterName)).Scaling;
                tensors[key].Dispose();
                tensors[key] = scaled;
            }

            SafeTensorsWriter.Write(Path.Combine(dir, PeftAdapter.WeightsFileName), tensors);
        }
        finally
        {
            foreach (var t in tensors.Values)
                t.Dispose();
        }

        PeftConfigFile.Write(dir, PeftAdapter.ForSaving(model, baked, adapterName));
        return dir;
    }
}
