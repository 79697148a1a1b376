using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// A method that puts adapters on layers (LoRA, IA3): targets resolved by the shared rules of
/// <see cref="PeftTargeting"/>, one adapter attached per selected host. A new method of this kind supplies its config
/// type, which hosts it can adapt (<see cref="CannotHost"/>) and how to build one adapter (<see cref="Attach"/>).
/// </summary>
/// <typeparam name="TConfig">The method's config.</typeparam>
public abstract class LayerTunerMethod<TConfig> : PeftMethod, ILayerTuner
    where TConfig : TunerConfig
{
    /// <summary>Why <paramref name="host"/> at <paramref name="path"/> cannot carry this method's adapter under
    /// <paramref name="config"/>, or null when it can.</summary>
    public abstract string? CannotHost(IAdapterHost host, string path, TConfig config);

    /// <summary>Builds adapter <paramref name="adapterName"/> for <paramref name="host"/> (at <paramref name="path"/>,
    /// for per-module settings) and adds it. The generated typed injection calls this through
    /// <see cref="PeftInjector.Attach"/>, the dynamic path through <see cref="Inject"/>: both create identical adapters.</summary>
    public abstract nn.Module Attach(IAdapterHost host, string path, TConfig config, string adapterName);

    public override IReadOnlyList<string> Inject(nn.Module model, PeftConfig config, string adapterName)
    {
        var typed = Typed(Prepare(model, config));
        var targets = ResolveTargets(model, typed);
        foreach (var (path, host) in targets)
            Attach(host, path, typed, adapterName);
        return targets.Select(t => t.Path).ToList();
    }

    /// <summary>The hosts <paramref name="config"/> selects on <paramref name="model"/>, with PEFT's errors.</summary>
    public IReadOnlyList<(string Path, IAdapterHost Layer)> ResolveTargets(nn.Module model, TConfig config) =>
        PeftTargeting.Resolve(model, config, DisplayName, (host, path) => CannotHost(host, path, config));

    IReadOnlyList<(string Path, IAdapterHost Layer)> ILayerTuner.ResolveTargets(nn.Module model, TunerConfig config) => ResolveTargets(model, Typed(config));

    nn.Module ILayerTuner.Attach(IAdapterHost layer, string path, TunerConfig config, string adapterName)
    {
        var typed = Typed(config);
        if (CannotHost(layer, path, typed) is { } reason)
            throw new LoraException(reason);
        return Attach(layer, path, typed, adapterName);
    }

    public override IEnumerable<(string PeftKey, Parameter Parameter)> ExtraTrainables(nn.Module model, PeftConfig config, string adapterName) =>
        ModulesToSave.Entries(model, Typed(config));

    /// <summary>The saved form: targets (and what a method adds, <see cref="ForSaving(nn.Module, TConfig, IReadOnlyList{string})"/>)
    /// as the list of what they resolved to on <paramref name="model"/>, when they are not a PEFT form already.</summary>
    public override PeftConfig ForSaving(nn.Module model, PeftConfig config, string adapterName, IReadOnlyList<string>? adaptedPaths = null)
    {
        var typed = Typed(config);
        if (adaptedPaths is null)
        {
            var carrying = model.AdaptedLayers().Where(l => l.Layer.HasAdapter(adapterName)).Select(l => l.Path).ToList();
            adaptedPaths = carrying.Count > 0 ? carrying : ResolveTargets(model, typed).Select(t => t.Path).ToList();
        }

        return ForSaving(model, typed, adaptedPaths);
    }

    /// <summary>The saved form of <paramref name="config"/> given the paths its adapter sits on.</summary>
    public virtual TConfig ForSaving(nn.Module model, TConfig config, IReadOnlyList<string> adaptedPaths) =>
        config with
        {
            TargetModules = config.TargetModules is { IsPeftForm: true } peft ? peft : AsPeftList(model, config, adaptedPaths, (c, t) => c with { TargetModules = t }),
            FanInFanOut = PeftTargeting.AllFanInFanOut(model, adaptedPaths),
        };

    /// <summary>
    /// <paramref name="paths"/> as a PEFT list: their leaf names when those select exactly the same layers under
    /// <paramref name="config"/> (what PEFT itself writes for all-linear), else the full dotted paths.
    /// </summary>
    /// <param name="model">The model the paths are on.</param>
    /// <param name="config">The config the list goes into.</param>
    /// <param name="paths">The selected module paths.</param>
    /// <param name="withList">Puts a candidate list into the config (targets, or IA3's feed-forward modules).</param>
    private TargetModules AsPeftList(nn.Module model, TConfig config, IReadOnlyList<string> paths, Func<TConfig, TargetModules, TConfig> withList)
    {
        var wanted = paths.ToHashSet(StringComparer.Ordinal);
        var leaves = TargetModules.FromNames(paths.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct(StringComparer.Ordinal));
        try
        {
            var byLeaf = ResolveTargets(model, withList(config, leaves)).Select(t => t.Path);
            if (byLeaf.ToHashSet(StringComparer.Ordinal).SetEquals(wanted))
                return leaves;
        }
        catch (LoraException)
        {
            // The leaf names select something that cannot host the method: the full paths are unambiguous.
        }

        return TargetModules.FromNames(paths.Order(StringComparer.Ordinal));
    }

    /// <summary><paramref name="config"/> as this method's config type.</summary>
    protected TConfig Typed(PeftConfig config) =>
        config as TConfig ?? throw new ArgumentException($"{DisplayName} needs a {typeof(TConfig).Name}, got a {config.GetType().Name}.", nameof(config));
}
