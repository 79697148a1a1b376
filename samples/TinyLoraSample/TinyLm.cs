using Lora.Models;
using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace TinyLoraSample;

/// <summary>The toy model's config (no config.json: it is built in code).</summary>
public sealed record TinyConfig : ModelConfig;

/// <summary>One residual MLP block: <c>x + fc_out(gelu(fc_in(norm(x))))</c>.</summary>
public sealed class TinyBlock : nn.Module
{
    [ComponentName(Name = "norm")]
    public RmsNorm Norm;

    [ComponentName(Name = "fc_in")]
    public LinearLayer FcIn;

    [ComponentName(Name = "fc_out")]
    public LinearLayer FcOut;

    public TinyBlock(int hidden)
        : base(nameof(TinyBlock))
    {
        Norm = new RmsNorm(hidden, 1e-6);
        FcIn = new LinearLayer(hidden, 4 * hidden);
        FcOut = new LinearLayer(4 * hidden, hidden);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x) => x + FcOut.call(nn.functional.gelu(FcIn.call(Norm.call(x)))); // (B, T, C)
}

/// <summary>
/// A 2-block toy language model declared here, not a built-in: <c>embed → blocks.{i} → head</c>. Each position sees
/// only its own token, so it learns a next-token table: enough to watch LoRA learn.
/// </summary>
public class TinyLm : CausalLM
{
    [ComponentName(Name = "embed")]
    public EmbeddingLayer Embed;

    [ComponentName(Name = "blocks")]
    public ModuleList<TinyBlock> Blocks;

    [ComponentName(Name = "head")]
    public LinearLayer Head;

    public TinyLm(TinyConfig config)
        : base(nameof(TinyLm))
    {
        Config = config;
        Embed = new EmbeddingLayer(config.VocabSize, config.HiddenSize);
        Blocks = new ModuleList<TinyBlock>(Enumerable.Range(0, config.NumLayers).Select(_ => new TinyBlock(config.HiddenSize)).ToArray());
        Head = new LinearLayer(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    public override ModelConfig Config { get; }

    protected override string BaseModelPrefix => "model";

    public override Tensor Forward(Tensor inputIds, Tensor? attentionMask = null, Tensor? positionIds = null, KvCache? cache = null)
    {
        using var scope = NewDisposeScope();
        var x = Embed.call(inputIds);           // (B, T, C)
        foreach (var block in Blocks)
            x = block.Forward(x);               // (B, T, C)
        return Head.call(x).MoveToOuterDisposeScope(); // (B, T, vocab)
    }
}
