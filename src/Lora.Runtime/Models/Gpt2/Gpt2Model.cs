using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>The GPT-2 stack under <c>transformer.</c>: token (<c>wte</c>) + learned position (<c>wpe</c>) embeddings,
/// N blocks (<c>h</c>), final LayerNorm (<c>ln_f</c>) → hidden states.</summary>
public sealed class Gpt2Model : nn.Module
{
    [ComponentName(Name = "wte")]
    public EmbeddingLayer Wte;

    [ComponentName(Name = "wpe")]
    public EmbeddingLayer Wpe;

    [ComponentName(Name = "drop")]
    public Dropout Drop;

    [ComponentName(Name = "h")]
    public ModuleList<Gpt2Block> H;

    [ComponentName(Name = "ln_f")]
    public LayerNorm LnF;

    public Gpt2Model(Gpt2Config config, ScalarType dtype, torch.Device? device)
        : base(nameof(Gpt2Model))
    {
        Wte = new EmbeddingLayer(config.VocabSize, config.HiddenSize, dtype, device);
        Wpe = new EmbeddingLayer(config.MaxPositions, config.HiddenSize, dtype, device);
        Drop = nn.Dropout(config.EmbdPdrop);
        H = new ModuleList<Gpt2Block>(Enumerable.Range(0, config.NumLayers).Select(i => new Gpt2Block(config, i, dtype, device)).ToArray());
        LnF = nn.LayerNorm(config.HiddenSize, config.LayerNormEps, device: device, dtype: dtype);
        MaxPositions = config.MaxPositions;
        RegisterComponents();
    }

    /// <summary><c>n_positions</c>: rows of <c>wpe</c>.</summary>
    public int MaxPositions { get; }

    /// <summary>Recompute each block in the backward pass instead of keeping its activations
    /// (<see cref="Training.GradientCheckpoint"/>); only while training with grad enabled and no cache.</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>See <see cref="CausalLM.Forward"/>; returns hidden states <c>(B, T, C)</c> after <c>ln_f</c>.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache) =>
        Forward(inputIds, null, attentionMask, positionIds, cache);

    /// <summary>As the other overload, for token ids <c>(B, T)</c> or input embeddings <c>(B, T, C)</c> (exactly one;
    /// the position embeddings are added to either, as transformers does with <c>inputs_embeds</c>).</summary>
    public Tensor Forward(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var device = Wte.Weight.device;
        var tokens = LlamaModel.Embed(Wte, inputIds, inputsEmbeds, device);                  // (B, T, C)
        var (b, t) = (tokens.shape[0], tokens.shape[1]);
        var past = cache?.Length ?? 0;
        if (past + t > MaxPositions)
            throw new LoraException($"GPT-2 has {MaxPositions} positions (n_positions in config.json); this pass reaches position {past + t - 1}.");
        positionIds = positionIds?.to(device) ?? PositionIds.Default(attentionMask, b, t, past, device); // (B, T)
        var x = Drop.call(tokens + Wpe.call(positionIds));                                  // (B, T, C)
        var mask = AttentionMask.Build(attentionMask, b, t, past, device);                   // (B, 1, T, T_past + T) or null
        var checkpoint = GradientCheckpointing && training && cache is null && is_grad_enabled();
        foreach (var block in H)
        {
            x = checkpoint
                ? Training.GradientCheckpoint.Run((h, c) => block.Forward(h, c[0], null), x, mask)
                : block.Forward(x, mask, cache);
        }
        return LnF.call(x).MoveToOuterDisposeScope();
    }
}
