using System.Collections.Immutable;
using System.Text.RegularExpressions;
using Lora.Generators.Analysis;
using Lora.Generators.Tests.Helpers;
using Microsoft.CodeAnalysis;

namespace Lora.Generators.Tests;

/// <summary>
/// The generator's short-cuts give the answers of the plain algorithm: a model's tree taken from its base type's cached
/// tree equals the walk from the model itself (also when the model adds fields, or the walk meets the model or a
/// cycle), a cached resolution is reused only for the same plan values, and a pattern declared unable to match a dot
/// really cannot (so skipping per-index sampling for it changes nothing).
/// </summary>
public class ResolverCacheTests
{
    private const string Models = """
        using Lora;
        using Lora.Models;
        using Lora.Modules;
        using TorchSharp;

        namespace Demo;

        [Lora(Targets = "q_proj")] public partial class A : LlamaForCausalLM { }
        [Lora(Targets = "q_proj")] public partial class B : LlamaForCausalLM { }
        [Lora(Targets = "q_proj|extra")] public partial class WithField : LlamaForCausalLM { public LinearLayer Extra = null!; }

        public abstract class Holder : CausalLM
        {
            protected Holder() : base("holder") { }
            public SelfRef? Child;
            public Holder? Same;
        }

        [Lora(Targets = "x")] public partial class SelfRef : Holder { }
        """;

    [Theory]
    [InlineData("Demo.A")]
    [InlineData("Demo.B")]
    [InlineData("Demo.WithField")]
    [InlineData("Demo.SelfRef")]
    public void Tree_from_the_cache_equals_the_direct_walk(string model)
    {
        var compilation = TestCompilation.Create(Models);
        var symbols = LoraSymbols.Create(compilation);
        var type = compilation.GetTypeByMetadataName(model)!;
        var cached = ModuleTreeBuilder.Build(type, symbols, default);
        var direct = ModuleTreeBuilder.Walk(type, symbols, default);
        Assert.NotEmpty(direct.Nodes);
        Assert.Equal(direct.Nodes.Select(n => (n.PathTemplate, n.Kind, n.TypeName)), cached.Nodes.Select(n => (n.PathTemplate, n.Kind, n.TypeName)));
    }

    [Fact]
    public void Models_over_one_base_share_its_tree_across_compilations()
    {
        var first = TestCompilation.Create(Models);
        var second = first.AddSyntaxTrees(Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree.ParseText("class Unrelated { }", TestCompilation.ParseOptions));
        var a = ModuleTreeBuilder.Build(first.GetTypeByMetadataName("Demo.A")!, LoraSymbols.Create(first), default);
        var b = ModuleTreeBuilder.Build(first.GetTypeByMetadataName("Demo.B")!, LoraSymbols.Create(first), default);
        var again = ModuleTreeBuilder.Build(second.GetTypeByMetadataName("Demo.A")!, LoraSymbols.Create(second), default);
        var own = ModuleTreeBuilder.Build(first.GetTypeByMetadataName("Demo.WithField")!, LoraSymbols.Create(first), default);
        Assert.Same(a, b);
        Assert.Same(a, again);
        Assert.NotSame(a, own);
        Assert.Equal(a.Nodes.Length + 1, own.Nodes.Length);

        ImmutableArray<string> linear = ["Lora.Peft.LinearAdapter"];
        Assert.Same(a.Resolve("q_proj", [], null, linear), b.Resolve("q_proj", [], null, linear));
        Assert.NotSame(a.Resolve("q_proj", [], null, linear), a.Resolve("q_proj", [], [0], linear));
        Assert.NotSame(a.Resolve("q_proj", [], null, linear), a.Resolve("q_proj", ["lm_head"], null, linear));
        Assert.NotSame(a.Resolve("q_proj", [], null, linear), a.Resolve("q_proj", [], null, ["Lora.Peft.LinearAdapter", "Lora.Peft.EmbeddingAdapter"]));
    }

    [Theory]
    [InlineData("q_proj|v_proj")]
    [InlineData("(q|k|v)_proj")]
    [InlineData(@"\w+_proj")]
    [InlineData("layer_[0-9]+")]
    [InlineData("[a-z_-]+")]
    [InlineData("^(?:c_attn)$")]
    [InlineData("(?i)Q_PROJ")]
    public void Patterns_said_not_to_match_a_dot_do_not(string pattern)
    {
        Assert.False(TargetResolver.MayMatchDot(pattern));
        var regex = new Regex(TargetResolver.Anchored(pattern), RegexOptions.CultureInvariant);
        foreach (var path in new[] { ".", "a.b", "q_proj.", ".q_proj", "model.layers.0.self_attn.q_proj", "layer_1.layer_2", "c_attn.c_attn" })
            Assert.False(regex.IsMatch(path), path);
    }

    [Theory]
    [InlineData(".*_proj")]
    [InlineData(@"model\.layers\.0\.q_proj")]
    [InlineData("[^x]+")]
    [InlineData("[--z]+")]
    [InlineData(@"a\x2Eb")]
    [InlineData(@"a\056b")]
    [InlineData(@"a\p{P}b")]
    [InlineData(@"a\Wb")]
    [InlineData("a b")]
    [InlineData("[a-z")]
    public void Patterns_that_may_match_a_dot_are_sampled(string pattern) =>
        Assert.True(TargetResolver.MayMatchDot(pattern));
}
