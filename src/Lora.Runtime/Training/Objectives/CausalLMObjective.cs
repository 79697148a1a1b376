using Lora.Backend;
using Lora.Data;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>
/// Supervised fine-tuning of a causal LM (TRL's <c>SFTTrainer</c>, transformers' <c>ForCausalLMLoss</c>): examples
/// (or rows packed from them) right-padded into micro-batches, the loss summed over every label that is not -100
/// after the shift (<see cref="CausalLMLoss"/>), normalised by the label tokens of the whole accumulated batch.
/// Evaluation is the token-weighted mean loss and its perplexity.
/// </summary>
public sealed class CausalLMObjective : ITrainingObjective
{
    private readonly IReadOnlyList<TokenizedExample>? _examples;
    private readonly IReadOnlyList<PackedSequence>? _packed;
    private readonly Collator _collator;

    /// <param name="examples">Tokenised examples (labels -100 where the loss is not taken).</param>
    /// <param name="padTokenId">Id written on padding (never predicted: its labels are -100).</param>
    /// <param name="packing">Concatenate examples into rows of <paramref name="maxLength"/> tokens (attention stays
    /// inside each example).</param>
    /// <param name="maxLength">The packed row length.</param>
    /// <param name="role">What the data is for, in messages (<c>training</c>, <c>evaluation</c>).</param>
    /// <exception cref="LoraException">No examples, or every example fully masked.</exception>
    public CausalLMObjective(IReadOnlyList<TokenizedExample> examples, int padTokenId = 0, bool packing = false, int maxLength = 1024, string role = "training")
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
            throw new LoraException($"the {role} data has no examples.");
        if (examples.All(e => e.PredictedTokens == 0))
            throw new LoraException($"every {role} example is fully masked (no label other than -100 after the shift): nothing to learn from.");
        _collator = new Collator(padTokenId, packedMask: false); // packed rows: see Loss
        if (packing)
        {
            _packed = Packer.Pack(examples, maxLength).ToList();
            Lengths = _packed.Select(r => r.Length).ToArray();
        }
        else
        {
            _examples = examples;
            Lengths = examples.Select(e => e.InputIds.Length).ToArray();
        }
    }

    public IReadOnlyList<int> Lengths { get; }

    public IObjectiveBatch Collate(IReadOnlyList<int> indices) => new SftBatch(_packed is not null
        ? _collator.Collate(indices.Select(i => _packed[i]).ToList())
        : _collator.Collate(indices.Select(i => _examples![i]).ToList()));

    public ObjectiveLoss Loss(CausalLM model, IObjectiveBatch batch, Device device)
    {
        var b = ((SftBatch)batch).Batch;
        Tensor ToDevice(Tensor t) => HostToDevice.Copy(t, device); // pinned, non-blocking on CUDA
        // No read-back: the normaliser is counted on the host. The head and the loss are fused where the model allows.
        // Packed rows run padding-free where the architecture can (no mask; the position ids stay on the host, where
        // the model reads the example boundaries from them), otherwise with the block-diagonal mask, built on the device.
        Tensor sum;
        if (b.SegmentIds is null)
            sum = CausalLMLoss.ModelTokenSum(model, ToDevice(b.InputIds), ToDevice(b.Labels), b.InputTokens == b.InputIds.numel() ? null : ToDevice(b.AttentionMask));
        else if (model.SupportsPaddingFree && model.ActivePrompt is null)
            sum = CausalLMLoss.ModelTokenSum(model, ToDevice(b.InputIds), ToDevice(b.Labels), null, b.PositionIds);
        else
            sum = CausalLMLoss.ModelTokenSum(model, ToDevice(b.InputIds), ToDevice(b.Labels), PackedAttentionMask.FromSegments(ToDevice(b.SegmentIds)), ToDevice(b.PositionIds));
        return new ObjectiveLoss(sum);
    }

    /// <summary>Token-weighted mean loss over the examples (unpacked) and <c>exp</c> of it.</summary>
    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model, Device device, int batchSize)
    {
        var rows = _examples ?? throw new LoraException("evaluation data cannot be packed.");
        double sum = 0;
        long tokens = 0;
        foreach (var chunk in rows.Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = _collator.Collate(chunk);
            var logits = model.Forward(batch.InputIds.to(device), batch.AttentionMask.to(device));
            var (s, n) = CausalLMLoss.Sum(logits, batch.Labels.to(device));
            sum += s.to(ScalarType.Float64).item<double>();
            tokens += n;
        }

        if (tokens == 0)
            throw new LoraException("the evaluation data has no predicted tokens (every example is fully masked).");
        return new Dictionary<string, double> { ["loss"] = sum / tokens, ["perplexity"] = Math.Exp(sum / tokens) };
    }

    /// <summary>A collated batch with the label-token normaliser: the labels the summed loss covers,
    /// <c>labels[:, 1:] != -100</c> (the reference trace's count, fixtures/trainer/train_trace: <c>n_tok</c>), so the loss
    /// is the mean over predicted tokens. transformers' <c>Trainer.get_batch_samples</c> counts <c>labels != -100</c>
    /// unshifted instead, one more per row whose first label is not -100 (plain text without a prompt mask; never
    /// with completion-only labels, whose first label is a prompt token). With prompt tuning / P-tuning the summed
    /// loss also holds the first label, which the last virtual position predicts (PEFT pads the labels in front):
    /// the count leaves it out, as the count of the reference's loop would (only where that label is not -100).</summary>
    private sealed class SftBatch(Batch batch) : IObjectiveBatch
    {
        public Batch Batch { get; } = batch;

        public long Normalizer => Batch.LabelTokens;

        public long InputTokens => Batch.InputTokens;

        public void Dispose() => Batch.Dispose();
    }
}
