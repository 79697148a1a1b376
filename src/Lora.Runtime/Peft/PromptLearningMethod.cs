using System.Text.Json.Nodes;
using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// A prompt-learning method (prefix tuning, prompt tuning, P-tuning): not a layer adapter but one
/// <see cref="PromptEncoder"/> attached to the model (<see cref="PromptHost"/>, <c>prompt_encoder</c>), which enters
/// <see cref="CausalLM.Forward"/> (PEFT's <c>PeftModelForCausalLM</c>). This base supplies what they share with PEFT:
/// the <c>PromptLearningConfig</c> fields of <c>adapter_config.json</c>, the model dimensions filled in by
/// <c>_prepare_prompt_learning_config</c> (<c>utils/other.py</c>) and checked on load, and the file: one tensor,
/// <c>prompt_embeddings</c> (<c>BasePromptEncoder._get_adapter_state_dict</c>: the encoder's output in training, its
/// table once loaded), plus <see cref="PromptLearningFiles.EncoderStateFileName"/> while a reparameterisation exists.
/// A method supplies its own fields and its encoder (<see cref="CreateEncoder"/>).
/// </summary>
/// <typeparam name="TConfig">The method's config.</typeparam>
public abstract class PromptLearningMethod<TConfig> : PeftMethod
    where TConfig : PromptLearningConfig
{
    /// <summary>The method's own fields of <c>adapter_config.json</c>, into a config of its type.</summary>
    protected abstract TConfig ReadOwn(PeftConfigFields fields);

    /// <summary>Adds the method's own fields.</summary>
    protected abstract void WriteOwn(TConfig config, IDictionary<string, JsonNode?> fields);

    /// <summary>The encoder for <paramref name="config"/> (prepared: every dimension set) on <paramref name="model"/>.</summary>
    protected abstract PromptEncoder CreateEncoder(CausalLM model, TConfig config);

    /// <summary>PEFT's <c>token_dim</c> / <c>num_attention_heads</c> for <paramref name="model"/>: the hidden size and the
    /// attention heads; prefix tuning takes the key/value width and heads instead.</summary>
    protected virtual (int TokenDim, int Heads) Dimensions(ModelConfig model) => (model.HiddenSize, model.NumHeads);

    /// <summary>The method's own checks of a prepared config against the model (e.g. encoder sizes).</summary>
    protected virtual TConfig PrepareOwn(CausalLM model, TConfig config) => config;

    public override PeftConfig ReadConfig(PeftConfigFields fields)
    {
        fields.RequireDefault("modules_to_save");
        var config = ReadOwn(fields) with
        {
            NumVirtualTokens = fields.Int("num_virtual_tokens") ?? throw fields.Error("num_virtual_tokens", "is missing (the number of virtual tokens)."),
            TokenDim = fields.Int("token_dim"),
            NumTransformerSubmodules = fields.Int("num_transformer_submodules"),
            NumAttentionHeads = fields.Int("num_attention_heads"),
            NumLayers = fields.Int("num_layers"),
        };
        if (config.NumVirtualTokens <= 0)
            throw fields.Error("num_virtual_tokens", $"must be > 0 (got {config.NumVirtualTokens}).");
        if (config.NumTransformerSubmodules is { } sub and not 1)
            throw fields.Error("num_transformer_submodules", $"is {sub}; only decoder-only models (1) are supported.");
        return config;
    }

    public override void WriteConfig(PeftConfig config, IDictionary<string, JsonNode?> fields)
    {
        var typed = Typed(config);
        fields["auto_mapping"] = null;
        fields["modules_to_save"] = null;
        fields["num_virtual_tokens"] = typed.NumVirtualTokens;
        fields["token_dim"] = typed.TokenDim;
        fields["num_transformer_submodules"] = typed.NumTransformerSubmodules ?? 1;
        fields["num_attention_heads"] = typed.NumAttentionHeads;
        fields["num_layers"] = typed.NumLayers;
        WriteOwn(typed, fields);
    }

    /// <summary>Unset dimensions from the model (PEFT's <c>_prepare_prompt_learning_config</c>); set ones must be the
    /// model's, or the virtual tokens would not fit it.</summary>
    public override PeftConfig Prepare(nn.Module model, PeftConfig config)
    {
        var typed = Typed(config);
        var causal = model as CausalLM ?? throw new LoraException($"{DisplayName} adapts a causal language model (CausalLM), not a {model.GetType().Name}.");
        if (typed.NumVirtualTokens <= 0)
            throw new LoraException($"{DisplayName}: num_virtual_tokens must be > 0 (got {typed.NumVirtualTokens}).");
        var (tokenDim, heads) = Dimensions(causal.Config);
        var layers = causal.Config.NumLayers;
        Check("token_dim", typed.TokenDim, tokenDim);
        Check("num_attention_heads", typed.NumAttentionHeads, heads);
        Check("num_layers", typed.NumLayers, layers);
        Check("num_transformer_submodules", typed.NumTransformerSubmodules, 1);
        var prepared = typed with { TokenDim = tokenDim, NumAttentionHeads = heads, NumLayers = layers, NumTransformerSubmodules = 1 };
        return PrepareOwn(causal, prepared);

        void Check(string field, int? given, int actual)
        {
            if (given is { } g && g != actual)
                throw new LoraException($"{DisplayName}: {field} is {g}, but this model ({causal.Config.ModelType}, {layers} layers, hidden {causal.Config.HiddenSize}) needs {actual}; the adapter was made for another model.");
        }
    }

    public override IReadOnlyList<string> Inject(nn.Module model, PeftConfig config, string adapterName)
    {
        var prepared = (TConfig)Prepare(model, config);
        var causal = (CausalLM)model;
        var host = PromptHost.For(causal);
        host.AddAdapter(adapterName, CreateEncoder(causal, prepared));
        return [CausalLM.PromptEncoderName];
    }

    /// <summary>A file for a build-time plan must have the plan's number of virtual tokens, and what the plan's
    /// encoder is built with (<see cref="OwnDifferences"/>).</summary>
    public override IEnumerable<string> Differences(PeftConfig file, PeftConfig plan)
    {
        var (f, p) = (Typed(file), Typed(plan));
        if (f.NumVirtualTokens != p.NumVirtualTokens)
            yield return $"num_virtual_tokens = {f.NumVirtualTokens} (plan: {p.NumVirtualTokens})";
        foreach (var difference in OwnDifferences(f, p))
            yield return difference;
    }

    /// <summary>The method's own fields that must agree between a file and a plan.</summary>
    protected virtual IEnumerable<string> OwnDifferences(TConfig file, TConfig plan) => [];

    /// <summary>Loaded adapters are built in their saved form (PEFT's <c>inference_mode</c>).</summary>
    public override PeftConfig ForLoading(PeftConfig config) => Typed(config) with { InferenceMode = true };

    /// <summary>Saved with the dimensions filled in, as PEFT writes them.</summary>
    public override PeftConfig ForSaving(nn.Module model, PeftConfig config, string adapterName, IReadOnlyList<string>? adaptedPaths = null) =>
        Prepare(model, config);

    /// <summary><c>prompt_embeddings</c> <c>(n, width)</c> in <c>adapter_model.safetensors</c>, the config, and while
    /// the encoder is reparameterised its whole state in <see cref="PromptLearningFiles.EncoderStateFileName"/>.</summary>
    public override void WriteFiles(nn.Module model, string directory, PeftConfig config, string adapterName)
    {
        var encoder = Encoder(model, adapterName);
        using (var scope = NewDisposeScope())
        {
            var embeddings = encoder.PromptEmbeddings().detach().to(ScalarType.Float32).cpu().contiguous();
            SafeTensorsWriter.Write(Path.Combine(directory, WeightsFileName), new Dictionary<string, Tensor> { [PromptLearningFiles.PromptEmbeddingsKey] = embeddings });
        }

        var state = Path.Combine(directory, PromptLearningFiles.EncoderStateFileName);
        if (!encoder.SavedFormIsComplete)
        {
            using var scope = NewDisposeScope();
            SafeTensorsWriter.Write(state, encoder.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().to(ScalarType.Float32).cpu().contiguous(), StringComparer.Ordinal));
        }
        else if (File.Exists(state))
        {
            File.Delete(state); // a stale state of an earlier save would not describe this adapter
        }

        PeftConfigFile.Write(directory, ForSaving(model, config, adapterName));
    }

    /// <summary>The table from <c>prompt_embeddings</c>; a reparameterised encoder (resuming training) from
    /// <see cref="PromptLearningFiles.EncoderStateFileName"/>, strictly.</summary>
    public override void ReadFiles(nn.Module model, string directory, PeftConfig config, string adapterName)
    {
        var encoder = Encoder(model, adapterName);
        var weightsPath = PeftAdapter.WeightsPath(directory, WeightsFileName);
        using var file = SafeTensorsFile.Open(weightsPath);
        var keys = file.Tensors.Keys.ToList();
        if (keys.Count != 1 || keys[0] != PromptLearningFiles.PromptEmbeddingsKey)
            throw new LoraException($"{weightsPath}: a {DisplayName} adapter file holds one tensor, '{PromptLearningFiles.PromptEmbeddingsKey}'; this one has {string.Join(", ", keys.Take(5))}{(keys.Count > 5 ? ", …" : string.Empty)}.");
        if (encoder.SavedFormIsComplete)
        {
            using var scope = NewDisposeScope();
            encoder.LoadPromptEmbeddings(file.Load(PromptLearningFiles.PromptEmbeddingsKey, encoder.Table.dtype, encoder.Table.device), weightsPath);
            return;
        }

        var statePath = Path.Combine(Path.GetDirectoryName(weightsPath)!, PromptLearningFiles.EncoderStateFileName);
        if (!File.Exists(statePath))
            throw new LoraException($"{weightsPath}: prompt_embeddings are the output of this {DisplayName} adapter's reparameterisation, which is not saved in PEFT's file, and {statePath} is missing; training cannot continue from it (load the adapter for inference with PeftAdapter.Load).");
        using var state = SafeTensorsFile.Open(statePath);
        var expected = encoder.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        if (!expected.Keys.ToHashSet(StringComparer.Ordinal).SetEquals(state.Tensors.Keys))
            throw new LoraException($"{statePath}: holds {string.Join(", ", state.Tensors.Keys.Order(StringComparer.Ordinal))}, this {DisplayName} encoder has {string.Join(", ", expected.Keys.Order(StringComparer.Ordinal))}.");
        using var noGrad = no_grad();
        foreach (var (name, parameter) in expected)
        {
            if (!state.Tensors[name].Shape.SequenceEqual(parameter.shape))
                throw new LoraException($"{statePath}: '{name}' has shape ({string.Join(", ", state.Tensors[name].Shape)}), the encoder needs ({string.Join(", ", parameter.shape)}).");
            using var value = state.Load(name, parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }

    public override string? Describe(nn.Module model, PeftConfig config, string adapterName) =>
        model is CausalLM causal && causal.Attached(CausalLM.PromptEncoderName) is PromptHost host && host.HasAdapter(adapterName)
            ? host.Adapter(adapterName).Describe()
            : null;

    /// <summary>The encoder of adapter <paramref name="adapterName"/>.</summary>
    protected static PromptEncoder Encoder(nn.Module model, string adapterName) =>
        (model as CausalLM)?.Attached(CausalLM.PromptEncoderName) is PromptHost host && host.HasAdapter(adapterName)
            ? host.Adapter(adapterName)
            : throw new LoraException($"the model has no prompt-learning adapter named '{adapterName}'.");

    /// <summary><paramref name="config"/> as this method's config type.</summary>
    protected TConfig Typed(PeftConfig config) =>
        config as TConfig ?? throw new ArgumentException($"{DisplayName} needs a {typeof(TConfig).Name}, got a {config.GetType().Name}.", nameof(config));
}
