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
    public static IReadOnlyList<string> Inject(nn.Module model, PeftConfig config, string adapterName = PeftAdapter.DefaultName) =>
        AllOrNothing(model, [adapterName], () =>
        {
            var paths = PeftMethods.For(config).Inject(model, config, adapterName);
            FreezeBase(model, config, adapterName);
            return paths;
        });

    /// <summary>Runs <paramref name="inject"/>, which adds the adapters <paramref name="adapterNames"/>, all or
    /// nothing: when it throws part-way (e.g. a rank_pattern entry of 0 for one layer, or the second of two plans), what
    /// it attached is removed again, then the exception propagates — a name no layer had before entirely
    /// (<see cref="PeftAdapter.Remove"/>), a name some layers had already only from the layers that had it not.
    /// <see cref="Inject"/> and the generated <c>InjectAdapters</c> both run through it.</summary>
    public static IReadOnlyList<string> AllOrNothing(nn.Module model, IEnumerable<string> adapterNames, Func<IReadOnlyList<string>> inject)
    {
        ArgumentNullException.ThrowIfNull(inject);
        var names = adapterNames.Distinct(StringComparer.Ordinal).ToList();
        var before = new Dictionary<IAdapterHost, HashSet<string>>(ReferenceEqualityComparer.Instance);
        foreach (var host in model.modules().OfType<IAdapterHost>())
            before[host] = names.Where(host.HasAdapter).ToHashSet(StringComparer.Ordinal);
        try
        {
            return inject();
        }
        catch (Exception)
        {
            foreach (var name in names)
            {
                if (!before.Values.Any(had => had.Contains(name)))
                {
                    PeftAdapter.Remove(model, name);
                    continue;
                }

                foreach (var host in model.modules().OfType<IAdapterHost>())
                {
                    if (host.HasAdapter(name) && !(before.TryGetValue(host, out var had) && had.Contains(name)))
                        host.DeleteAdapter(name);
                }
            }

            throw;
        }
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
