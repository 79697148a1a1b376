using Lora.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// One prompt-learning adapter (PEFT's <c>BasePromptEncoder</c>, <c>tuners/tuners_utils.py</c>): a module attached to
/// the model (under <c>prompt_encoder.adapters.{name}</c>, <see cref="PromptHost"/>) that produces
/// <see cref="PromptEmbeddings"/> — what PEFT saves as <c>prompt_embeddings</c> — and knows how they enter a forward
/// pass (<see cref="Forward"/>: prepended to the input embeddings, or written into the key/value cache). Its
/// <see cref="Table"/> (<c>embedding.weight</c>) holds the virtual tokens; a reparameterisation (prefix tuning's
/// projection, P-tuning's MLP/LSTM) maps them to the prompt embeddings during training, and is dropped when saving,
/// as in PEFT.
/// </summary>
public abstract class PromptEncoder : nn.Module
{
    protected PromptEncoder(string name, int virtualTokens)
        : base(name)
    {
        VirtualTokens = virtualTokens;
    }

    /// <summary>Virtual positions this adapter adds.</summary>
    public int VirtualTokens { get; }

    /// <summary>The PEFT method's name, for display (<c>prefix tuning</c>, <c>prompt tuning</c>, <c>P-tuning</c>).</summary>
    public abstract string MethodName { get; }

    /// <summary>The virtual token table (<c>embedding.weight</c>).</summary>
    public abstract Parameter Table { get; }

    /// <summary>True when <see cref="PromptEmbeddings"/> is the table itself, so the saved <c>prompt_embeddings</c>
    /// are the adapter's whole state; false while a reparameterisation sits between them.</summary>
    public abstract bool SavedFormIsComplete { get; }

    /// <summary><c>(n, width)</c>, fp32, differentiable: PEFT's <c>get_prompt_embedding_to_save</c>.</summary>
    public abstract Tensor PromptEmbeddings();

    /// <summary>Logits of <paramref name="model"/> with this adapter's virtual tokens (see <see cref="IPromptLearner"/>).</summary>
    public abstract Tensor Forward(CausalLM model, Tensor inputIds, Tensor? attentionMask, Tensor? positionIds, KvCache? cache);

    /// <summary>One line for <c>lora inspect</c>: what the adapter adds to the model.</summary>
    public abstract string Describe();

    /// <summary>Fills the table from a saved <c>prompt_embeddings</c> (PEFT's <c>load_prompt_embeddings</c>).</summary>
    /// <exception cref="LoraException">A reparameterised encoder (its saved form loses the reparameterisation), or a
    /// shape that is not the table's.</exception>
    public void LoadPromptEmbeddings(Tensor value, string where)
    {
        if (!SavedFormIsComplete)
            throw new LoraException($"{where}: prompt_embeddings are the output of this {MethodName} adapter's reparameterisation and cannot be loaded into it (PEFT cannot either); load the adapter for inference (PeftAdapter.Load) or resume from a checkpoint, which also holds {PromptLearningFiles.EncoderStateFileName}.");
        if (!value.shape.SequenceEqual(Table.shape))
            throw new LoraException($"{where}: prompt_embeddings has shape ({string.Join(", ", value.shape)}) but this adapter needs ({string.Join(", ", Table.shape)}) (num_virtual_tokens, token_dim or the model differ).");
        using var noGrad = no_grad();
        Table.copy_(value);
    }

    /// <summary>The caller's 2-D mask with <paramref name="n"/> attended virtual positions in front (PEFT concatenates
    /// <c>ones(batch, num_virtual_tokens)</c>), or null.</summary>
    protected static Tensor? WithVirtualPositions(Tensor? attentionMask, long batch, int n)
    {
        if (attentionMask is null)
            return null;
        if (attentionMask.ndim != 2)
            throw new LoraException("a 4-D attention mask (packed sequences) cannot take prompt-learning virtual tokens; train prompt-learning methods without packing.");
        return cat([ones(batch, n, attentionMask.dtype, attentionMask.device), attentionMask], 1);
    }

    /// <summary>The cache's virtual positions must be this adapter's.</summary>
    protected void CheckCache(KvCache cache)
    {
        if (cache.VirtualTokens != VirtualTokens)
            throw new LoraException($"the KV cache holds {cache.VirtualTokens} virtual positions, this {MethodName} adapter adds {VirtualTokens}: it was filled with another adapter (or none); start generation with a new cache.");
    }
}
