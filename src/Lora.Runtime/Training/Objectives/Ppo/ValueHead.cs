using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Ppo;

/// <summary>
/// PPO's critic: TRL's <c>ValueHead</c> (<c>trl/experimental/ppo/modeling_value_head.py</c>: <c>summary =
/// nn.Linear(hidden_size, 1)</c>, PyTorch's default init, computed in fp32) on the policy's own final hidden states,
/// as <c>AutoModelForCausalLMWithValueHead</c> lays it out: a child module <c>v_head</c> of the model, so one base
/// serves as policy, reference (adapters off) and critic. (TRL's experimental <c>PPOTrainer</c> takes a separate value
/// model instead; sharing the backbone lets the value loss train the same adapter.) It is saved as
/// <c>value_head.safetensors</c> with TRL's keys <c>v_head.summary.weight</c> / <c>v_head.summary.bias</c>.
/// </summary>
public sealed class ValueHead : nn.Module<Tensor, Tensor>
{
    /// <summary>The module name on the model (TRL's <c>v_head</c>).</summary>
    public const string ModuleName = "v_head";

    /// <summary>The file beside the adapter.</summary>
    public const string FileName = "value_head.safetensors";

    [TorchSharp.Utils.ComponentName(Name = "summary")]
    public Linear Summary;

    private ValueHead(long hiddenSize, Device device)
        : base(ModuleName)
    {
        Summary = nn.Linear(hiddenSize, 1, hasBias: true, device: device, dtype: ScalarType.Float32);
        RegisterComponents();
    }

    /// <summary>Adds a fresh value head to <paramref name="model"/> (fp32, on its device).</summary>
    public static ValueHead Attach(CausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.named_children().Any(c => c.name == ModuleName))
            throw new LoraException($"the model already has a {ModuleName}.");
        var head = new ValueHead(model.Config.HiddenSize, (model.InputEmbedding?.Weight ?? model.parameters().First()).device);
        model.register_module(ModuleName, head);
        return head;
    }

    /// <summary>Values <c>(B, T)</c> of hidden states <c>(B, T, C)</c>.</summary>
    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        return Summary.call(hidden.to(ScalarType.Float32)).squeeze(-1).MoveToOuterDisposeScope();
    }

    /// <summary>Its parameters under TRL's keys.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> NamedParameters =>
        named_parameters().Select(p => ($"{ModuleName}.{p.name}", p.parameter)).ToList();

    /// <summary>Writes <see cref="FileName"/> into <paramref name="directory"/>.</summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = NamedParameters.ToDictionary(p => p.Name, p => p.Parameter.detach().cpu().contiguous(), StringComparer.Ordinal);
        SafeTensorsWriter.Write(Path.Combine(directory, FileName), tensors);
    }

    /// <summary>Reads <see cref="FileName"/> from <paramref name="directory"/> (strict keys and shapes).</summary>
    public void Load(string directory)
    {
        var path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
            throw new LoraException($"{path}: file not found (PPO checkpoints hold the value head beside the adapter).");
        using var file = SafeTensorsFile.Open(path);
        using var noGrad = no_grad();
        foreach (var (name, parameter) in NamedParameters)
        {
            if (!file.Tensors.TryGetValue(name, out var entry))
                throw new LoraException($"{path}: missing \"{name}\".");
            if (!entry.Shape.SequenceEqual(parameter.shape))
                throw new LoraException($"{path}: \"{name}\" has shape ({string.Join(", ", entry.Shape)}), the value head needs ({string.Join(", ", parameter.shape)}).");
            using var value = file.Load(name, parameter.dtype, parameter.device);
            parameter.copy_(value);
        }
    }
}
