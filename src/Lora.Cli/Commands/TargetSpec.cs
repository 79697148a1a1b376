using Lora.Peft;

namespace Lora.Cli.Commands;

/// <summary>How the CLI spells targets, as <c>[Lora(Targets = ...)]</c> does: <c>all-linear</c>, a comma-separated
/// list of names (PEFT list semantics), or a .NET regex that must fully match a leaf name or a full dotted path
/// (<c>q_proj|v_proj</c>, <c>.*layers\.0\..*_proj</c>).</summary>
internal static class TargetSpec
{
    public static TargetModules Parse(string text)
    {
        if (string.Equals(text, TargetModules.AllLinearShorthand, StringComparison.OrdinalIgnoreCase))
            return TargetModules.AllLinear;
        return text.Contains(',', StringComparison.Ordinal)
            ? TargetModules.FromNames(text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            : TargetModules.FromLeafOrPathRegex(text);
    }
}
