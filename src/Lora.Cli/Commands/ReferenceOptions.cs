using System.CommandLine;
using Lora.Models;
using Lora.Peft;
using Lora.Training.Objectives;
using TorchSharp;

namespace Lora.Cli.Commands;

/// <summary>
/// Where DPO's, PPO's and GRPO's reference policy comes from (<see cref="ReferenceModel"/>): by default the policy
/// with its adapters disabled, or a frozen copy of <c>--init-adapter</c> (TRL's rule); <c>--ref-adapter DIR</c> loads
/// another adapter of the same base as the reference; <c>--ref-model DIR</c> loads a separate model.
/// </summary>
internal sealed class ReferenceOptions
{
    public readonly Option<string?> RefAdapter = new("--ref-adapter") { Description = "Reference = the base with this PEFT adapter (instead of the policy with its adapters disabled)." };
    public readonly Option<string?> RefModel = new("--ref-model") { Description = "Reference = this separate model directory (same tokenizer)." };

    public void AddTo(Command command)
    {
        command.Options.Add(RefAdapter);
        command.Options.Add(RefModel);
    }

    /// <summary>Checks the combination before anything loads.</summary>
    public void Check(ParseResult parse)
    {
        if (parse.GetValue(RefAdapter) is not null && parse.GetValue(RefModel) is not null)
            throw new LoraException("--ref-adapter and --ref-model conflict: give one.");
        if (parse.GetValue(RefAdapter) is { } a && !Directory.Exists(a))
            throw new LoraException($"{a}: adapter directory not found.");
        if (parse.GetValue(RefModel) is { } m && !Directory.Exists(m))
            throw new LoraException($"{m}: model directory not found.");
    }

    /// <summary>True when the policy should load a frozen copy of <c>--init-adapter</c> as its reference.</summary>
    public bool WantsInitCopy(ParseResult parse, ObjectiveOptions common) =>
        parse.GetValue(common.InitAdapter) is not null && parse.GetValue(RefAdapter) is null && parse.GetValue(RefModel) is null;

    /// <summary>The reference for the loaded <paramref name="policy"/>; a separate model is returned to be disposed.</summary>
    public (ReferenceModel Reference, CausalLM? Owned) Build(ParseResult parse, CausalLM policy, bool hasInitCopy, ObjectiveOptions.Request request, torch.Device device, TextWriter stderr)
    {
        if (parse.GetValue(RefModel) is { } dir)
        {
            var model = CausalLM.FromPretrained(dir, request.Training.Bf16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float32, device, request.Quantization);
            model.DisableDropout();
            return (ReferenceModel.Separate(model), model);
        }

        if (parse.GetValue(RefAdapter) is { } adapter)
        {
            PeftAdapter.Load(policy, adapter, "ref", w => stderr.WriteLine($"warning: {w}"));
            policy.SetActiveAdapters(PeftAdapter.DefaultName);
            return (ReferenceModel.Adapter("ref"), null);
        }

        return (hasInitCopy ? ReferenceModel.Adapter("ref") : ReferenceModel.DisabledAdapters, null);
    }
}
