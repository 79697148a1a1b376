using System.Globalization;
using Lora.Models;
using Lora.Peft;
using TorchSharp.Modules;

namespace Lora.Training;

/// <summary>
/// Which parameters a run trains (<see cref="TrainingMode"/>), from what the model and the method declare: a PEFT
/// adapter and what its method trains besides (<see cref="PeftModelExtensions.MarkTrainable"/>); every weight; or the
/// last N decoder blocks and the final norm, found where the model's family says they are
/// (<see cref="ModelFamily.DecoderLayers"/>, <see cref="ModelFamily.FinalNormParameters"/>). Sets
/// <c>requires_grad</c> accordingly and returns the trainable parameters in model order.
/// </summary>
public static class TrainableSelection
{
    public static IReadOnlyList<(string Name, Parameter Parameter)> Apply(CausalLM model, TrainingOptions options, PeftConfig? adapterConfig)
    {
        switch (options.Mode)
        {
            case TrainingMode.Peft:
                if (!model.AdaptedLayers().Any())
                    throw new LoraException("adapter training needs adapters on the model: inject them (PeftInjector.Inject) or load one (PeftAdapter.Load), or choose full fine-tuning.");
                if (adapterConfig is null)
                    throw new LoraException("adapter training needs the adapter's config (it is saved with every checkpoint).");
                return model.MarkTrainable(adapterConfig, options.AdapterName);
            case TrainingMode.Full:
                if (model.AdaptedLayers().Any())
                    throw new LoraException("full fine-tuning of a model with adapters: merge and unload them first (MergeAndUnload).");
                return model.MarkTrainableWhere(_ => true);
            default:
                if (model.AdaptedLayers().Any())
                    throw new LoraException("top-N layer fine-tuning of a model with adapters: merge and unload them first (MergeAndUnload).");
                return TopLayers(model, options.TopLayers);
        }
    }

    private static IReadOnlyList<(string Name, Parameter Parameter)> TopLayers(CausalLM model, int count)
    {
        var family = model.Family
            ?? throw new LoraException($"top-N layer fine-tuning needs to know where {model.GetType().Name}'s decoder layers are; model_type '{model.Config.ModelType}' has no family (Models/ModelFamilies.cs).");
        var layers = model.Config.NumLayers;
        if (count > layers)
            throw new LoraException($"top layers {count} > the model's {layers} layers.");
        var prefixes = Enumerable.Range(layers - count, count)
            .Select(i => $"{family.DecoderLayers}.{i.ToString(CultureInfo.InvariantCulture)}.")
            .ToList();
        var trained = model.named_parameters()
            .Where(p => prefixes.Any(pre => p.name.StartsWith(pre, StringComparison.Ordinal)) || family.FinalNormParameters.Contains(p.name))
            .Select(p => p.parameter)
            .ToHashSet(ReferenceEqualityComparer.Instance);
        return model.MarkTrainableWhere(trained.Contains);
    }
}
