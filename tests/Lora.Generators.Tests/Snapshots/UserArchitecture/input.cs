using System.Linq;
using Lora;
using Lora.Models;
using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Demo.Tiny;

public sealed record TinyConfig : ModelConfig;

public sealed class TinyBlock : nn.Module
{
    [ComponentName(Name = "fc_in")]
    public LinearLayer FcIn;

    [ComponentName(Name = "fc_out")]
    public LinearLayer FcOut;

    [ComponentName(Name = "norm")]
    public RmsNorm Norm;

    public TinyBlock(int hidden)
        : base(nameof(TinyBlock))
    {
        FcIn = new LinearLayer(hidden, 4 * hidden);
        FcOut = new LinearLayer(4 * hidden, hidden);
        Norm = new RmsNorm(hidden, 1e-6);
        RegisterComponents();
    }
}

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
        var x = Embed.call(inputIds);
        foreach (var block in Blocks)
            x = x + block.FcOut.call(nn.functional.gelu(block.FcIn.call(block.Norm.call(x))));
        return Head.call(x);
    }
}

[Lora(R = 4, Alpha = 8, Targets = "fc_in|fc_out|head")]
public partial class TinyLora : TinyLm
{
}
