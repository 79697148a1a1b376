using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>AdamW over the trainable parameters, in transformers' two groups: decayed, and not decayed (biases and
/// norm weights, <see cref="WeightDecayGroups"/>), updated by the fused multi-tensor kernel (<see cref="Lora.Training.AdamW"/>).</summary>
internal static class OptimizerSetup
{
    public static AdamW AdamW(nn.Module model, TrainingOptions options) => AdamW(model, options, out _);

    /// <summary>AdamW, over fp32 CPU copies of the parameters when <see cref="TrainingOptions.OptimizerOffload"/>, or
    /// over fp32 master copies on their own device when a trainable parameter is not fp32 (bf16 full or top-layer
    /// training: the update of a bf16 weight by a bf16 optimizer would round away most small steps; mixed-precision
    /// training keeps fp32 masters, as apex / DeepSpeed do). <paramref name="offload"/> then moves gradients and values
    /// between them each step.</summary>
    public static AdamW AdamW(nn.Module model, TrainingOptions options, out OffloadedParameters? offload)
    {
        var (decay, noDecay) = WeightDecayGroups.Split(model);
        var all = decay.Concat(noDecay).Select(p => (p.Name, p.Parameter)).ToList();
        offload = options.OptimizerOffload ? new OffloadedParameters(all)
            : all.Any(p => p.Parameter.dtype != ScalarType.Float32) ? new OffloadedParameters(all, all[0].Parameter.device)
            : null;
        var map = offload is null ? (Func<Parameter, Parameter>)(p => p) : offload.HostOf;
        var groups = new List<AdamW.ParamGroup>();
        if (decay.Count > 0)
            groups.Add(Group(decay.Select(p => (p.Name, map(p.Parameter))), options, options.WeightDecay));
        if (noDecay.Count > 0)
            groups.Add(Group(noDecay.Select(p => (p.Name, map(p.Parameter))), options, 0));
        return new AdamW(groups, options.LearningRate, options.AdamBeta1, options.AdamBeta2, options.AdamEpsilon);
    }

    private static AdamW.ParamGroup Group(IEnumerable<(string Name, Parameter Parameter)> parameters, TrainingOptions options, double weightDecay) =>
        new(parameters.Select(p => p.Parameter), new AdamW.Options
        {
            LearningRate = options.LearningRate,
            beta1 = options.AdamBeta1,
            beta2 = options.AdamBeta2,
            eps = options.AdamEpsilon,
            weight_decay = weightDecay,
            amsgrad = false,
            maximize = false,
        });
}
