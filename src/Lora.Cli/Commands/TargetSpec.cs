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

    /// <summary>Warns on <paramref name="stderr"/> about each alternative of <paramref name="config"/>'s targets that
    /// selected none of the <paramref name="adapted"/> paths (a misspelt name adapts nothing, and PEFT says nothing:
    /// <see cref="TargetModules.Unmatched"/>).</summary>
    public static void WarnUnmatched(PeftConfig config, IReadOnlyList<string> adapted, TextWriter stderr)
    {
        if (config is not TunerConfig { TargetModules: { } targets })
            return;
        var leaves = string.Join(", ", adapted.Select(p => p[(p.LastIndexOf('.') + 1)..]).Distinct(StringComparer.Ordinal));
        foreach (var alternative in targets.Unmatched(adapted))
            stderr.WriteLine($"warning: --targets: '{alternative}' selects no layer of this model, so it adapts nothing (adapted: {leaves}); check its spelling.");
    }
}
