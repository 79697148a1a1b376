namespace Lora.Peft;

/// <summary>
/// What every PEFT method's configuration has (PEFT's <c>PeftConfig</c>, <c>src/peft/config.py</c>): its
/// <c>peft_type</c>, the task, and the base model it was made for. <c>adapter_config.json</c> is read and written by
/// <see cref="PeftConfigFile"/>, which dispatches on <see cref="PeftType"/> to the method (<see cref="PeftMethods"/>).
/// </summary>
public abstract record PeftConfig
{
    /// <summary><c>peft_type</c>: <c>LORA</c>, <c>IA3</c>, ...</summary>
    public abstract string PeftType { get; }

    /// <summary><c>task_type</c> (<c>CAUSAL_LM</c> for decoder language models).</summary>
    public string TaskType { get; init; } = "CAUSAL_LM";

    public string? BaseModelNameOrPath { get; init; }

    public string? Revision { get; init; }
}

/// <summary>
/// The configuration of a method that adapts layers (PEFT's <c>BaseTuner</c> methods: LoRA, IA3, ...): which modules
/// get adapters, which are excluded, and which are trained in full and saved with the adapter. The targeting rules
/// are shared by every such method (<see cref="PeftTargeting"/>).
/// </summary>
public abstract record TunerConfig : PeftConfig
{
    /// <summary><c>target_modules</c> (null: none chosen yet).</summary>
    public TargetModules? TargetModules { get; init; }

    /// <summary><c>exclude_modules</c>: never adapted (same list/regex semantics as the targets).</summary>
    public TargetModules? ExcludeModules { get; init; }

    /// <summary><c>modules_to_save</c>: trained in full and saved with the adapter (e.g. <c>lm_head</c>); never targets.</summary>
    public IReadOnlyList<string>? ModulesToSave { get; init; }

    /// <summary><c>fan_in_fan_out</c>: the targets store their weight <c>(in, out)</c> (GPT-2 Conv1D). The layers know
    /// their storage; this is written so PEFT knows it too.</summary>
    public bool FanInFanOut { get; init; }

    /// <summary>PEFT's <c>check_target_module_exists</c> (<c>tuners/tuners_utils.py</c>): is the module at
    /// <paramref name="path"/> a target, before checking that it can host the method?</summary>
    public bool IsTarget(string path)
    {
        if (ExcludeModules?.Matches(path) == true)
            return false;
        if (ModulesToSave?.Any(m => System.Text.RegularExpressions.Regex.IsMatch(path, $@"(^|.*\.){m}($|\..*)")) == true)
            return false;
        return TargetModules is not null && TargetModules.Matches(path) && IncludesLayer(path);
    }

    /// <summary>A further per-layer restriction of the method (LoRA's <c>layers_to_transform</c>); true by default.</summary>
    protected virtual bool IncludesLayer(string path) => true;
}
