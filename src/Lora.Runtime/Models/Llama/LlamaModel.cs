using Lora.Modules;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>The decoder stack under <c>model.</c>: token embeddings, N blocks, final RMSNorm → hidden states.</summary>
public sealed class LlamaModel : nn.Module
{
    [ComponentName(Name = "embed_tokens")]
    public EmbeddingLayer EmbedTokens;

    [ComponentName(Name = "layers")]
    public ModuleList<LlamaDecoderLayer> Layers;

    [ComponentName(Name = "norm")]
    public RmsNorm Norm;

    public LlamaModel(LlamaConfig config, ScalarType dtype, torch.Device? device)
        : base(nameof(LlamaModel))
    {
        EmbedTokens = new EmbeddingLayer(config.VocabSize, config.HiddenSize, dtype, device);
        Layers = new ModuleList<LlamaDecoderLayer>(
            Enumerable.Range(0, config.NumLayers).Select(i => new LlamaDecoderLayer(config, i, dtype, device)).ToArray());
        Norm = new RmsNorm(config.HiddenSize, config.RmsNormEps, dtype, device);
        Rotary = new RotaryEmbedding(config.Rope, config.HeadDim);
        RegisterComponents();
    }

    /// <summary>Rotary embeddings shared by all layers (no parameters).</summary>
    public RotaryEmbedding Rotary { get; }

    /// <summary>Recompute each decoder layer in the backward pass instead of keeping its activations
    /// (<see cref="Training.GradientCheckpoint"/>); only while training with grad enabled and no cache.</summary>
    public bool GradientCheckpointing { get; set; }

    /// <summary>See <see cref="CausalLM.Forward"/>; returns hidden states <c>(B, T, C)</c> after the final norm.</summary>
    public Tensor Forward(Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache) =>
        Forward(inputIds, null, attentionMask, positionIds, cache);

    /// <summary>As the other overload, for token ids <c>(B, T)</c> or input embeddings <c>(B, T, C)</c> (exactly one).</summary>
    public Tensor Forward(Tensor? inputIds, Tensor? inputsEmbeds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var device = EmbedTokens.Weight.device;
        var x = Embed(EmbedTokens, inputIds, inputsEmbeds, device);                            // (B, T, C)
        var (b, t) = (x.shape[0], x.shape[1]);
        var past = cache?.Length ?? 0;
        // Padding-free packing: no mask, no cache, and host position ids that restart per example.
        var segments = attentionMask is null && cache is null && positionIds is not null ? PackedSegments.FromPositionIds(positionIds) : null;
        positionIds = positionIds is null
            ? PositionIds.Default(attentionMask, b, t, past, device)                           // (B, T)
            : Backend.HostToDevice.Copy(positionIds, device);                                   // host ids: pinned, non-blocking
        var (cos, sin) = Rotary.Compute(positionIds, x.dtype);                                // (B, T, d)
        var mask = AttentionMask.Build(attentionMask, b, t, past, device);                     // (B, 1, T, T_past + T) or null
        var checkpoint = GradientCheckpointing && training && cache is null && is_grad_enabled();
        foreach (var layer in Layers)
        {
            x = checkpoint
                ? Training.GradientCheckpoint.Run((h, c) => layer.Forward(h, c[0]!, c[1]!, c[2], null, segments), x, cos, sin, mask)
                : layer.Forward(x, cos, sin, mask, cache, segments);
        }
        return Norm.call(x).MoveToOuterDisposeScope();
    }

    /// <summary>The token embeddings of <paramref name="inputIds"/>, or <paramref name="inputsEmbeds"/> as given.</summary>
    internal static Tensor Embed(EmbeddingLayer table, Tensor? inputIds, Tensor? inputsEmbeds, torch.Device device) => (inputIds, inputsEmbeds) switch
    {
        ({ } ids, null) => table.call(ids.to(device)),
        (null, { } embeds) when embeds.ndim == 3 => embeds.to(device),
        (null, { } embeds) => throw new ArgumentException($"inputs_embeds must be (B, T, C), got ({string.Join(", ", embeds.shape)}).", nameof(inputsEmbeds)),
        _ => throw new ArgumentException("give exactly one of input_ids and inputs_embeds.", nameof(inputIds)),
    };
}
