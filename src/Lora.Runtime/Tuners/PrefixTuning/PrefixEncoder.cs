using Lora.Models;
using Lora.Peft;
using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace Lora.Tuners.PrefixTuning;

/// <summary>
/// PEFT's <c>PrefixEncoder</c> (<c>tuners/prefix_tuning/model.py</c>) and the prefix branch of
/// <c>PeftModel.get_prompt</c> (<c>peft_model.py</c>): a table <c>embedding</c> of <c>n</c> rows, either the prefixes
/// themselves <c>(n, L·2·kv)</c> or, with the projection, <c>(n, token_dim)</c> rows mapped by <c>transform</c>
/// (<c>Linear → tanh → Linear</c>) to them. Row layout (PEFT's <c>view(B, n, 2L, heads, head_dim)</c> then
/// <c>permute(2, 0, 3, 1, 4)</c>): for layer <c>i</c>, slice <c>2i</c> is the key and <c>2i + 1</c> the value, each
/// <c>(kv_heads, head_dim)</c>: on a grouped-query model the prefixes are per key/value head (PEFT #1901).
/// <para>
/// In a forward pass the prefixes fill the KV cache before the input (transformers' <c>DynamicCache</c> PEFT passes
/// as <c>past_key_values</c>): the input's keys and values are appended after them, every query attends to them
/// (the mask is extended by <c>ones(B, n)</c>), and positions start at <c>n</c> because transformers numbers the new
/// tokens from the cache length (<c>cache_position</c>); PEFT also shifts explicit position ids by <c>n</c>
/// (<c>_adjust_prompt_learning_kwargs</c>). The prefixes themselves get no rotary embedding (they are cached keys).
/// Without a cache a temporary one carries them; with a caller's cache they are written on its first pass and kept,
/// so cached and uncached generation agree. Gradient checkpointing is refused, as in PEFT
/// (<c>_setup_prompt_encoder</c>).
/// </para>
/// </summary>
public sealed class PrefixEncoder : PromptEncoder
{
    [ComponentName(Name = "embedding")]
    public Embedding Embedding;

    /// <summary>The reparameterisation (null without <c>prefix_projection</c> or once loaded).</summary>
    [ComponentName(Name = "transform")]
    public Sequential? Transform;

    public PrefixEncoder(int virtualTokens, int layers, int kvHeads, int tokenDim, bool projection, int encoderHiddenSize, bool initZero, torch.Device device)
        : base(nameof(PrefixEncoder), virtualTokens)
    {
        Layers = layers;
        KvHeads = kvHeads;
        TokenDim = tokenDim;
        if (tokenDim % kvHeads != 0)
            throw new LoraException($"prefix tuning: token_dim {tokenDim} is not a multiple of num_attention_heads {kvHeads}.");
        var width = layers * 2 * tokenDim;
        if (projection)
        {
            Embedding = nn.Embedding(virtualTokens, tokenDim, device: device);
            Transform = nn.Sequential(
                ("0", nn.Linear(tokenDim, encoderHiddenSize, device: device)),
                ("1", nn.Tanh()),
                ("2", nn.Linear(encoderHiddenSize, width, device: device)));
            if (initZero)
            {
                using var noGrad = no_grad();
                var last = (Linear)Transform[2];
                last.weight!.zero_();
                last.bias!.zero_();
            }
        }
        else
        {
            Embedding = nn.Embedding(virtualTokens, width, device: device);
            if (initZero)
            {
                using var noGrad = no_grad();
                Embedding.weight!.zero_();
            }
        }

        RegisterComponents();
    }

    public int Layers { get; }

    public int KvHeads { get; }

    /// <summary>Key/value width of one layer (<c>kv_heads · head_dim</c>).</summary>
    public int TokenDim { get; }

    public override string MethodName => Transform is null ? "prefix tuning (P-Tuning v2)" : "prefix tuning";

    public override Parameter Table => Embedding.weight!;

    public override bool SavedFormIsComplete => Transform is null;

    /// <summary><c>(n, L·2·kv)</c>.</summary>
    public override Tensor PromptEmbeddings() => Transform is null ? Table.alias() : Transform.call(Table);

    public override Tensor Forward(CausalLM model, Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        if (model.GradientCheckpointing && model.training)
            throw new LoraException("prefix tuning does not work with gradient checkpointing (the checkpointed layers would not see the key/value prefixes; PEFT refuses it too): turn gradient checkpointing off.");
        using var scope = NewDisposeScope();
        var batch = inputIds.shape[0];
        var n = VirtualTokens;
        var own = cache is null;
        var active = cache ?? model.NewCache(n + inputIds.shape[1]);
        try
        {
            if (active.Length == 0)
                Prefill(model, active, batch);
            else
                CheckCache(active);
            var mask = WithVirtualPositions(attentionMask, batch, n);
            return model.Decode(inputIds, null, mask, positionIds is null ? null : positionIds + n, active).MoveToOuterDisposeScope();
        }
        finally
        {
            if (own)
                active.Dispose();
        }
    }

    /// <summary>Writes the prefixes of every layer into the empty <paramref name="cache"/>, in the model's dtype.</summary>
    private void Prefill(CausalLM model, KvCache cache, long batch)
    {
        if (cache.Layers != Layers)
            throw new LoraException($"prefix tuning: the adapter has prefixes for {Layers} layers, the model {cache.Layers}.");
        var reference = model.InputEmbedding?.Weight ?? model.parameters().First();
        var headDim = TokenDim / KvHeads;
        var prefixes = PromptEmbeddings().to(reference.dtype, reference.device)      // (n, 2L·kv)
            .view(VirtualTokens, 2 * Layers, KvHeads, headDim)
            .permute(1, 2, 0, 3);                                                     // (2L, kv_heads, n, d)
        for (var layer = 0; layer < Layers; layer++)
        {
            var key = prefixes[2 * layer].unsqueeze(0).expand(batch, -1, -1, -1);    // (B, kv_heads, n, d)
            var value = prefixes[2 * layer + 1].unsqueeze(0).expand(batch, -1, -1, -1);
            _ = cache.Update(layer, key.contiguous(), value.contiguous());
        }

        cache.VirtualTokens = VirtualTokens;
    }

    public override string Describe() =>
        $"{MethodName}: {VirtualTokens} key/value prefix positions in each of {Layers} layers ({KvHeads} kv heads × {TokenDim / KvHeads}){(Transform is null ? string.Empty : $", reparameterised by a {((Linear)Transform[0]).weight!.shape[0]}-wide MLP while training")}";
}
