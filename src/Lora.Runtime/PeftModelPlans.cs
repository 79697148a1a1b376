using Lora.Data;
using Lora.Peft;
using Lora.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora;

/// <summary>
/// The runtime API of a model with build-time plans (<see cref="IPeftModel"/>): which plan an adapter name selects,
/// the config an adapter is saved with, save and load (typed injection first, plan checked against the file), what
/// trains, and the typed training entry point. Methods taking <c>string? adapterName = null</c> act on every declared
/// adapter when it is null.
/// </summary>
public static class PeftModelPlans
{
    /// <summary>The plan of <paramref name="adapterName"/>: the declared adapter of that name, or the only plan.</summary>
    /// <exception cref="LoraException">Several plans and none has that name.</exception>
    public static AdapterPlan PlanFor(this IPeftModel model, string adapterName)
    {
        var plans = model.AdapterPlans;
        return plans.FirstOrDefault(p => p.AdapterName == adapterName)
            ?? (plans.Count == 1 ? plans[0] with { AdapterName = adapterName }
                : throw new LoraException($"{model.GetType().Name} declares no adapter named '{adapterName}' (declared: {string.Join(", ", plans.Select(p => p.AdapterName))})."));
    }

    /// <summary>The plans an <c>adapterName</c> argument selects: null selects every declared adapter.</summary>
    public static IReadOnlyList<AdapterPlan> SelectPlans(this IPeftModel model, string? adapterName) =>
        adapterName is null ? model.AdapterPlans : [model.PlanFor(adapterName)];

    /// <summary>The plan of <paramref name="adapterName"/> (else the first) as saved in <c>adapter_config.json</c>:
    /// the targets become the leaf-name list when they are every layer with those names, otherwise the list of the
    /// resolved full paths, so that PEFT selects exactly the same layers.</summary>
    public static PeftConfig AdapterConfig(this IPeftModel model, string? adapterName = null)
    {
        var plan = model.SelectPlans(adapterName)[0];
        var paths = model.AdapterTargets(plan.AdapterName).Select(t => t.Path).ToList();
        return PeftMethods.For(plan.Config).ForSaving(Module(model), plan.Config, plan.AdapterName, paths);
    }

    /// <summary>Saves the adapter(s) as PEFT directories under <paramref name="directory"/> (<c>default</c> in it,
    /// others in subdirectories) with <see cref="AdapterConfig"/>: the adapter parameters plus what the plan trains
    /// besides (biases, modules_to_save) under PEFT's keys. Returns <paramref name="directory"/>.</summary>
    public static string SaveAdapter(this IPeftModel model, string directory, string? adapterName = null)
    {
        foreach (var plan in model.SelectPlans(adapterName))
            PeftAdapter.Save(Module(model), directory, model.AdapterConfig(plan.AdapterName), plan.AdapterName);
        return directory;
    }

    /// <summary>Loads PEFT adapter weights saved for this plan: injects the adapter (typed) unless it is there, checks
    /// that <c>adapter_config.json</c> is of the plan's method and agrees with it (LoRA: r, alpha, rsLoRA, DoRA), and
    /// fills every tensor (biases and modules_to_save included, their base values remembered for removal), failing
    /// loudly on a missing or unexpected key or a shape mismatch (the adapter is removed again if it was added here).</summary>
    /// <exception cref="LoraException">The directory does not hold an adapter for this plan.</exception>
    public static void LoadAdapter(this IPeftModel model, string directory, string? adapterName = null)
    {
        var module = Module(model);
        foreach (var plan in model.SelectPlans(adapterName))
        {
            var name = plan.AdapterName;
            var added = !IsInjected(model, name);
            if (added)
                model.InjectAdapters(name);
            try
            {
                PeftAdapter.LoadWeights(module, PeftAdapter.DirectoryFor(directory, name), plan.Config, name);
            }
            catch
            {
                if (added)
                    PeftAdapter.Remove(module, name);
                throw;
            }
        }
    }

    /// <summary>Freezes the base model and makes the adapter(s) trainable, with what each plan trains besides (the
    /// runtime's <see cref="PeftModelExtensions.MarkTrainable"/>: the same parameters <see cref="SaveAdapter"/>
    /// writes). Returns the trainable parameters, named, in model order.</summary>
    public static IReadOnlyList<(string Name, Parameter Parameter)> MarkAdaptersTrainable(this IPeftModel model, string? adapterName = null)
    {
        var module = Module(model);
        var selected = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var plan in model.SelectPlans(adapterName))
        {
            foreach (var (_, parameter) in module.MarkTrainable(plan.Config, plan.AdapterName))
                selected.Add(parameter);
        }

        return module.MarkTrainableWhere(selected.Contains);
    }

    /// <summary>Fine-tunes the declared adapter (<paramref name="adapterName"/>, else the first) with the runtime
    /// <see cref="Trainer"/>: the adapter is injected if it is not there yet, the base is frozen, the adapter (plus
    /// what its plan trains besides) trains, and checkpoints and the final adapter are written to
    /// <paramref name="outputDirectory"/> as PEFT directories with <see cref="AdapterConfig"/>.</summary>
    public static TrainingResult TrainAdapter(this IPeftModel model, IReadOnlyList<TokenizedExample> trainData, TrainingOptions options, string outputDirectory,
        IReadOnlyList<TokenizedExample>? evalData = null, int padTokenId = 0, string? resumeFrom = null, string? adapterName = null)
    {
        using var trainer = model.AdapterTrainer(trainData, options, outputDirectory, evalData, padTokenId, adapterName);
        return trainer.Train(resumeFrom);
    }

    /// <summary>The <see cref="Trainer"/> <c>TrainAdapter</c> (SFT data) runs, for callers that follow its events (a
    /// progress bar, <see cref="TensorBoardLogger"/>) before calling <see cref="Trainer.Train"/>; dispose it after.</summary>
    public static Trainer AdapterTrainer(this IPeftModel model, IReadOnlyList<TokenizedExample> trainData, TrainingOptions options, string outputDirectory,
        IReadOnlyList<TokenizedExample>? evalData = null, int padTokenId = 0, string? adapterName = null)
    {
        var plan = model.SelectPlans(adapterName)[0];
        if (!IsInjected(model, plan.AdapterName))
            model.InjectAdapters(plan.AdapterName);
        var causal = Module(model) as Models.CausalLM ?? throw new LoraException($"{model.GetType().Name} is not a CausalLM; the Trainer trains language models.");
        return new Trainer(causal, options with { Mode = TrainingMode.Peft, AdapterName = plan.AdapterName },
            outputDirectory, trainData, evalData, model.AdapterConfig(plan.AdapterName), padTokenId);
    }

    /// <summary>
    /// Trains the declared adapter on any <see cref="Training.Objectives.ITrainingObjective"/> (DPO, GRPO, PPO, a
    /// reward model, or your own) as <c>TrainAdapter</c> does on SFT data: injected if needed, the adapter (plus
    /// what its plan trains besides, and the objective's own parameters such as PPO's value head) trains, and the
    /// outputs are PEFT directories with <see cref="AdapterConfig"/>. The reference of an objective built with
    /// <see cref="Training.Objectives.ReferenceModel.DisabledAdapters"/> is this model with its adapters disabled.
    /// </summary>
    public static TrainingResult TrainAdapter(this IPeftModel model, Training.Objectives.ITrainingObjective objective, TrainingOptions options, string outputDirectory,
        Training.Objectives.ITrainingObjective? evalObjective = null, string? resumeFrom = null, string? adapterName = null)
    {
        using var trainer = model.AdapterTrainer(objective, options, outputDirectory, evalObjective, adapterName);
        return trainer.Train(resumeFrom);
    }

    /// <summary>The <see cref="Trainer"/> the objective overload of <c>TrainAdapter</c> runs; dispose it after.</summary>
    public static Trainer AdapterTrainer(this IPeftModel model, Training.Objectives.ITrainingObjective objective, TrainingOptions options, string outputDirectory,
        Training.Objectives.ITrainingObjective? evalObjective = null, string? adapterName = null)
    {
        var plan = model.SelectPlans(adapterName)[0];
        if (!IsInjected(model, plan.AdapterName))
            model.InjectAdapters(plan.AdapterName);
        var causal = Module(model) as Models.CausalLM ?? throw new LoraException($"{model.GetType().Name} is not a CausalLM; the Trainer trains language models.");
        return new Trainer(causal, options with { Mode = TrainingMode.Peft, AdapterName = plan.AdapterName }, outputDirectory, objective, evalObjective,
            model.AdapterConfig(plan.AdapterName));
    }

    /// <summary>Is the adapter there: on its typed targets, or (prompt learning, no layer targets) in the model's
    /// prompt encoder?</summary>
    private static bool IsInjected(IPeftModel model, string adapterName) =>
        model.AdapterTargets(adapterName).Any(t => t.Layer.HasAdapter(adapterName))
        || (Module(model) as Models.CausalLM)?.Attached(Models.CausalLM.PromptEncoderName) is PromptHost host && host.HasAdapter(adapterName);

    private static nn.Module Module(IPeftModel model) =>
        model as nn.Module ?? throw new LoraException($"{model.GetType().Name} is not a TorchSharp module.");
}
