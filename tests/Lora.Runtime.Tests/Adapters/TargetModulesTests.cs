using Lora.Peft;

namespace Lora.Runtime.Tests.Adapters;

/// <summary><see cref="TargetModules.Unmatched"/>: which alternatives of a target list or regex select none of the
/// adapted layers (the CLI warns about them; PEFT ignores them silently).</summary>
public class TargetModulesTests
{
    private static readonly string[] Adapted = ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj", "model.layers.0.mlp.up_proj"];

    [Fact]
    public void Names_and_regex_alternatives_that_select_nothing_are_reported()
    {
        Assert.Equal(["v_projj"], TargetModules.FromNames(["q_proj", "v_projj", "up_proj"]).Unmatched(Adapted));
        Assert.Equal(["v_projj"], TargetModules.FromLeafOrPathRegex("q_proj|v_projj").Unmatched(Adapted));
        Assert.Equal(["x"], TargetModules.FromPattern(@".*\.q_proj|x").Unmatched(Adapted));
        Assert.Equal(["k_proj"], TargetModules.FromLeafOrPathRegex(@"(q|v)_proj|k_proj|model\.layers\.0\.mlp\.up_proj").Unmatched(Adapted));
        Assert.Equal(["[|]x"], TargetModules.FromLeafOrPathRegex("[|]x|q_proj").Unmatched(Adapted)); // the class's bar does not split
    }

    [Fact]
    public void One_alternative_groups_and_all_linear_report_nothing()
    {
        Assert.Empty(TargetModules.FromNames(["q_proj", "up_proj"]).Unmatched(Adapted));
        Assert.Empty(TargetModules.FromNames(["nothing"]).Unmatched(Adapted));                 // alone it is an error already
        Assert.Empty(TargetModules.FromLeafOrPathRegex("(q_proj|v_projj)").Unmatched(Adapted)); // inside a group: not split
        Assert.Empty(TargetModules.AllLinear.Unmatched(Adapted));
    }

    [Fact]
    public void The_split_ignores_bars_in_groups_classes_and_escapes()
    {
        Assert.Equal(["q_proj", "v_proj"], RegexAlternatives.TopLevel("q_proj|v_proj"));
        Assert.Equal(["(q|v)_proj", "x"], RegexAlternatives.TopLevel("(q|v)_proj|x"));
        Assert.Equal(["[|]a", @"b\|c", ""], RegexAlternatives.TopLevel(@"[|]a|b\|c|"));
        Assert.Equal(["q_proj"], RegexAlternatives.TopLevel("q_proj"));
    }
}
