using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>TRL's <c>disable_dropout_in_model</c> (<c>trl/trainer/utils.py</c>): every dropout module's p set to 0.
/// TRL's reward, DPO and PPO trainers do this by default (<c>disable_dropout=True</c>; GRPO's default is False), so the
/// policy and its reference see the same network and the log-ratios at init are 0.</summary>
public static class DropoutControl
{
    /// <summary>Sets p = 0 on every <c>nn.Dropout</c> of <paramref name="model"/> (adapters' dropout included);
    /// returns how many there were.</summary>
    public static int DisableDropout(this nn.Module model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var count = 0;
        foreach (var module in model.modules().OfType<Dropout>())
        {
            module.p = 0;
            count++;
        }

        return count;
    }
}
