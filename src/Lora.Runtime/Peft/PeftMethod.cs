using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// A PEFT method (a "tuner"): how it reads and writes its <c>adapter_config.json</c>, adds its adapters to a model,
/// and what it trains and saves besides its adapter parameters. One instance per method, listed in
/// <see cref="PeftMethods.All"/>. Methods that adapt layers derive from <see cref="LayerTunerMethod{TConfig}"/>, which
/// supplies the shared targeting. Modelled on PEFT's <c>BaseTuner</c> (<c>tuners/tuners_utils.py</c>).
/// </summary>
public abstract class PeftMethod
{
    /// <summary>PEFT's <c>peft_type</c> (<c>LORA</c>, <c>IA3</c>).</summary>
    public abstract string PeftType { get; }

    /// <summary>The name messages use (<c>LoRA</c>, <c>IA3</c>).</summary>
    public abstract string DisplayName { get; }

    /// <summary>The method's own fields of <c>adapter_config.json</c>; the shared ones (<c>peft_type</c>,
    /// <c>task_type</c>, base model, and for layer tuners the targets) are read by <see cref="PeftConfigFile"/>.</summary>
    public abstract PeftConfig ReadConfig(PeftConfigFields fields);

    /// <summary>Adds the method's own fields of <paramref name="config"/> to <paramref name="fields"/>.</summary>
    public abstract void WriteConfig(PeftConfig config, IDictionary<string, JsonNode?> fields);

    /// <summary>PEFT's <c>_prepare_adapter_config</c>: <paramref name="config"/> completed for <paramref name="model"/>
    /// (defaults from the model family that PEFT takes from its per-model tables) and checked, before any adapter is
    /// built. Both the dynamic and the generated injection call it.</summary>
    public virtual PeftConfig Prepare(nn.Module model, PeftConfig config) => config;

    /// <summary>Adds adapter <paramref name="adapterName"/> to <paramref name="model"/> as <paramref name="config"/>
    /// says (after <see cref="Prepare"/>); returns the adapted module paths (ordinal order).</summary>
    public abstract IReadOnlyList<string> Inject(nn.Module model, PeftConfig config, string adapterName);

    /// <summary>Parameters outside the adapter that it trains and saves, with their PEFT keys (modules_to_save; LoRA's
    /// biases).</summary>
    public virtual IEnumerable<(string PeftKey, Parameter Parameter)> ExtraTrainables(nn.Module model, PeftConfig config, string adapterName) => [];

    /// <summary>The config as saved for <paramref name="model"/>: forms PEFT cannot read (this product's leaf-or-path
    /// regex, <c>all-linear</c>) replaced by what they resolved to, so PEFT selects the same layers.</summary>
    /// <param name="model">The model.</param>
    /// <param name="config">The config in force.</param>
    /// <param name="adapterName">The adapter being saved.</param>
    /// <param name="adaptedPaths">Where the adapter sits (the typed targets of a build-time plan); null: the layers
    /// carrying it now, or else those the config resolves to.</param>
    public virtual PeftConfig ForSaving(nn.Module model, PeftConfig config, string adapterName, IReadOnlyList<string>? adaptedPaths = null) => config;

    /// <summary>Throws when <paramref name="config"/> would not rebuild adapter <paramref name="adapterName"/> as it
    /// is on <paramref name="model"/> (e.g. LoRA ranks), before it is saved with it.</summary>
    public virtual void CheckDescribes(nn.Module model, PeftConfig config, string adapterName)
    {
    }

    /// <summary>Where a saved config (<paramref name="file"/>) disagrees with a build-time plan: one line each.</summary>
    public virtual IEnumerable<string> Differences(PeftConfig file, PeftConfig plan) => [];

    /// <summary>The config used to build adapters that are about to be filled from a file: the initialisation does
    /// not matter then (LoRA picks its cheapest; prompt-learning methods build their saved form).</summary>
    public virtual PeftConfig ForLoading(PeftConfig config) => config;

    /// <summary>The weights file of an adapter directory of this method (<c>adapter_model.safetensors</c>).</summary>
    public virtual string WeightsFileName => PeftAdapter.WeightsFileName;

    /// <summary>Writes adapter <paramref name="adapterName"/> of <paramref name="model"/> into the existing
    /// <paramref name="directory"/>, atomically file by file, in this method's layout: by default PEFT's
    /// (<c>adapter_model.safetensors</c> with the adapters' parameters and <see cref="ExtraTrainables"/> under their
    /// PEFT keys, and <c>adapter_config.json</c> of <see cref="ForSaving"/>).</summary>
    public virtual void WriteFiles(nn.Module model, string directory, PeftConfig config, string adapterName) =>
        PeftAdapter.WriteLayerAdapter(model, directory, config, adapterName);

    /// <summary>Fills adapter <paramref name="adapterName"/>, attached to <paramref name="model"/>, from
    /// <paramref name="directory"/> (whose config is <paramref name="config"/>), strictly: every key it needs, no other,
    /// same shapes. By default PEFT's layer keys.</summary>
    public virtual void ReadFiles(nn.Module model, string directory, PeftConfig config, string adapterName) =>
        PeftAdapter.FillLayerAdapter(model, directory, config, adapterName);

    /// <summary>An <c>adapter_config.json</c> without <c>peft_type</c> that this method reads in another library's
    /// format (AdapterHub's, for bottleneck adapters), or null when it is not one.</summary>
    public virtual PeftConfig? ReadForeignConfig(PeftConfigFields fields) => null;

    /// <summary>One line for <c>lora inspect</c> on what adapter <paramref name="adapterName"/> adds (null: the
    /// per-layer listing says it all).</summary>
    public virtual string? Describe(nn.Module model, PeftConfig config, string adapterName) => null;
}
