using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// A prompt-learning adapter whose virtual tokens are input embeddings (prompt tuning, P-tuning): PEFT's
/// <c>PeftModelForCausalLM.forward</c> for those types (<c>peft_model.py</c>) —
/// <code>
///   inputs_embeds  = cat(prompts (B, n, C), word_embeddings(input_ids) (B, T, C))     prompts cast to the embeddings' dtype
///   attention_mask = cat(ones(B, n), attention_mask)                                   when a mask is given
///   logits         = (B, n + T, vocab)                                                 the virtual positions come back too
/// </code>
/// Positions count the virtual tokens (they are ordinary inputs). With a KV cache, the first pass (empty cache)
/// prepends them and the cache remembers <c>n</c> (<see cref="KvCache.VirtualTokens"/>); later passes feed token ids
/// only and extend the caller's mask by <c>n</c>, as PEFT's <c>prepare_inputs_for_generation</c> does. Explicit
/// position ids are the caller's (0-based without the virtual tokens) and are shifted by <c>n</c>, the virtual tokens
/// taking <c>0 … n−1</c> (PEFT drops explicit position ids for these methods with a warning).
/// </summary>
public abstract class VirtualTokenEncoder : PromptEncoder
{
    protected VirtualTokenEncoder(string name, int virtualTokens)
        : base(name, virtualTokens)
    {
    }

    public override Tensor Forward(CausalLM model, Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache)
    {
        using var scope = NewDisposeScope();
        var batch = inputIds.shape[0];
        var n = VirtualTokens;
        var mask = WithVirtualPositions(attentionMask, batch, n);
        if (cache is not null && cache.Length > 0)
        {
            CheckCache(cache);
            return model.Decode(inputIds, null, mask, positionIds is null ? null : positionIds + n, cache).MoveToOuterDisposeScope();
        }

        var table = model.InputEmbedding
            ?? throw new LoraException($"{model.GetType().Name} does not name its input embedding table (CausalLM.InputEmbedding), which {MethodName} prepends virtual tokens to.");
        var device = table.Weight.device;
        var embeds = table.call(inputIds.to(device));                                          // (B, T, C)
        var prompts = PromptEmbeddings().to(embeds.dtype, device).unsqueeze(0).expand(batch, -1, -1); // (B, n, C)
        var positions = positionIds is null ? null
            : cat([arange(n, ScalarType.Int64, device).unsqueeze(0).expand(batch, n), positionIds.to(device) + n], 1);
        var logits = model.Decode(null, cat([prompts, embeds], 1), mask, positions, cache);  // (B, n + T, vocab)
        if (cache is not null)
            cache.VirtualTokens = n;
        return logits.MoveToOuterDisposeScope();
    }
}
