using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// The one place adapters of any method are attached to layers. The dynamic path (<see cref="Inject"/>: a config
/// resolved against the module tree at run time, PEFT style) and the source generator's emitted code (typed field
/// accesses resolved at build time, calling <see cref="Attach"/>) both end in the method's
/// <see cref="LayerTunerMethod{TConfig}.Attach"/>, so they create identical adapters.
/// </summary>
public static class PeftInjector
{
    /// <summary>Adds adapter <paramref name="adapterName"/> to every layer of <paramref name="model"/> that
    /// <paramref name="config"/> targets and freezes the base model, as PEFT's <c>get_peft_model</c> does
    /// (<c>BaseTuner.inject_adapter</c> → <c>_mark_only_adapters_as_trainable</c>, peft/tuners/tuners_utils.py): every
    /// parameter that belongs to no adapter stops requiring grad, except what the method trains besides
    /// (modules_to_save, LoRA's <c>bias</c> setting); adapters keep their flags. Returns the adapted paths (ordinal order).</summary>
    /// <exception cref="LoraException">The targets match no layer that can host the method (the message lists the
    /// linear layers there are), or match one that cannot (e.g. a norm). Nothing is left attached then.</exception>
    public static IReadOnlyList<string> Inject(nn.Module model, PeftConfig config, string adapterName = PeftAdapter.DefaultName)
    {
        // All or nothing: a failure part-way (e.g. a rank_pattern entry of 0 for one layer) removes what was attached,
        // unless the name was there before (then the method refused it before attaching anything).
        var present = model.modules().OfType<IAdapterHost>().Any(h => h.HasAdapter(adapterName));
        IReadOnlyList<string> paths;
        try
        {
            paths = PeftMethods.For(config).Inject(model, config, adapterName);
        }
        catch (Exception) when (!present)
        {
            PeftAdapter.Remove(model, adapterName);
            throw;
        }

        FreezeBase(model, config, adapterName);
        return paths;
    }

    /// <summary>What <see cref="Inject"/> does after attaching (PEFT's <c>_mark_only_adapters_as_trainable</c>): every
    /// parameter of <paramref name="model"/> that belongs to no adapter stops requiring grad, except what
    /// <paramref name="config"/>'s method trains besides (modules_to_save, LoRA's <c>bias</c>); adapters keep their
    /// flags. The generated <c>InjectAdapters</c> calls it after its typed <see cref="Attach"/> calls, so both paths
    /// leave the base frozen.</summary>
    public static void FreezeBase(nn.Module model, PeftConfig config, string adapterName = PeftAdapter.DefaultName)
    {
        var adapters = model.AdapterParameters().Select(p => p.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        var extra = PeftMethods.For(config).ExtraTrainables(model, config, adapterName).Select(e => e.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (_, parameter) in model.named_parameters())
        {
            if (!adapters.Contains(parameter))
                parameter.requires_grad = extra.Contains(parameter);
        }
    }

    /// <summary><paramref name="config"/> completed for <paramref name="model"/> by its method (family defaults, checks):
    /// what the generated injection attaches with.</summary>
    public static PeftConfig Prepare(nn.Module model, PeftConfig config) => PeftMethods.For(config).Prepare(model, config);

    /// <summary>The layers <paramref name="config"/> selects, with the same errors as <see cref="Inject"/>.</summary>
    public static IReadOnlyList<(string Path, IAdapterHost Layer)> ResolveTargets(nn.Module model, TunerConfig config) =>
        Tuner(config).ResolveTargets(model, config);

    /// <summary>Adds one adapter of <paramref name="config"/>'s method (a config already <see cref="Prepare"/>d) to
    /// <paramref name="layer"/> (at <paramref name="path"/>, for per-module settings), as the dynamic path would.</summary>
    /// <exception cref="LoraException">The layer cannot host the method.</exception>
    public static nn.Module Attach(IAdapterHost layer, string path, TunerConfig config, string adapterName) =>
        Tuner(config).Attach(layer, path, config, adapterName);

    private static ILayerTuner Tuner(TunerConfig config) =>
        PeftMethods.For(config) as ILayerTuner ?? throw new LoraException($"{config.PeftType} does not adapt layers.");
}

/// <summary>The untyped face of <see cref="LayerTunerMethod{TConfig}"/>.</summary>
internal interface ILayerTuner
{
    IReadOnlyList<(string Path, IAdapterHost Layer)> ResolveTargets(nn.Module model, TunerConfig config);

    nn.Module Attach(IAdapterHost layer, string path, TunerConfig config, string adapterName);
}
