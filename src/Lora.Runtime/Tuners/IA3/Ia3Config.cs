using System.Text.RegularExpressions;
using Lora.Peft;

namespace Lora.Tuners.IA3;

/// <summary>
/// An IA3 adapter's configuration (PEFT's <c>IA3Config</c>, <c>tuners/ia3/config.py</c>; <c>peft_type: "IA3"</c>):
/// learned vectors on <c>target_modules</c> that scale the input of the <see cref="FeedforwardModules"/> and the
/// output of the others. The targets, exclusions and modules to save are the shared <see cref="TunerConfig"/> fields.
/// </summary>
public sealed record Ia3Config : TunerConfig
{
    public override string PeftType => Ia3Method.PeftTypeName;

    /// <summary><c>feedforward_modules</c>: targets whose input (not output) is scaled. A list matches a module whose
    /// path ends with a listed string (PEFT's <c>key.endswith(target_key)</c>, no dot required); a string is a regex
    /// that must match the whole path. Null: the model family's default (PEFT's
    /// <c>TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING</c>), resolved when the adapter is injected.</summary>
    public TargetModules? FeedforwardModules { get; init; }

    /// <summary><c>init_ia3_weights</c>: vectors start at 1 (the adapter is a no-op); false draws them from N(0, 1).</summary>
    public bool InitIa3Weights { get; init; } = true;

    /// <summary>Is the target at <paramref name="path"/> a feed-forward module (PEFT's
    /// <c>IA3Model._check_target_module_feedforward</c>)?</summary>
    public bool IsFeedForward(string path) => FeedforwardModules switch
    {
        null => false,
        { Names: { } names } => names.Any(n => path.EndsWith(n, StringComparison.Ordinal)),
        var targets => targets.Matches(path),
    };

    /// <summary>PEFT requires the list of feed-forward modules to be a subset of the list of targets
    /// (<c>IA3Config.__post_init__</c>): the names that break that rule, when both are lists.</summary>
    public IReadOnlyList<string> FeedForwardNotInTargets() =>
        FeedforwardModules?.Names is { } ff && TargetModules?.Names is { } targets
            ? ff.Where(n => !targets.Contains(n, StringComparer.Ordinal)).ToList()
            : [];
}
