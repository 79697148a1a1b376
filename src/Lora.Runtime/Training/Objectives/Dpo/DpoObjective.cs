using Lora.Backend;
using Lora.Data.Preference;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Dpo;

/// <summary>
/// Direct Preference Optimization (TRL's <c>DPOTrainer</c>, <c>trl/trainer/dpo_trainer.py</c>). A micro-batch is
/// the chosen sequences then the rejected ones (<c>prompt + completion</c>, cut to max_length, right-padded: TRL's
/// <c>DataCollatorForPreference</c>); each sequence's log-probability is summed over its completion tokens only
/// (<c>per_token_logps[completion_mask == 0] = 0; logps = per_token_logps.sum(1)</c>), for the policy and the
/// reference (<see cref="ReferenceModel"/>: by default the policy with its adapters disabled; or precomputed once).
/// The loss is <see cref="DpoLoss"/> summed over pairs and divided by the pairs of the accumulated batch. Metrics,
/// with TRL's names: <c>rewards/chosen</c>, <c>rewards/rejected</c>, <c>rewards/accuracies</c>,
/// <c>rewards/margins</c>, <c>logps/chosen</c>, <c>logps/rejected</c> (and <c>eval_…</c> for evaluation data).
/// </summary>
public sealed class DpoObjective : ITrainingObjective
{
    private readonly List<Pair> _pairs;
    private readonly int _padTokenId;
    private readonly DpoOptions _options;
    private readonly ReferenceModel _reference;
    private double[]? _refChosen;
    private double[]? _refRejected;

    /// <param name="pairs">Tokenised pairs (<see cref="PreferenceDataset"/>).</param>
    /// <param name="padTokenId">Written on padding (never scored).</param>
    /// <param name="options">TRL's DPO options.</param>
    /// <param name="reference">The reference policy (default: adapters disabled).</param>
    /// <param name="role">What the data is for, in messages.</param>
    public DpoObjective(IReadOnlyList<PreferenceExample> pairs, int padTokenId, DpoOptions? options = null, ReferenceModel? reference = null, string role = "training")
    {
        ArgumentNullException.ThrowIfNull(pairs);
        _options = options ?? new DpoOptions();
        _options.Validate();
        _padTokenId = padTokenId;
        _reference = reference ?? ReferenceModel.DisabledAdapters;
        if (pairs.Count == 0)
            throw new LoraException($"the {role} data has no preference pairs.");

        // dpo_trainer.py _prepare_dataset: with keep_start, a prompt that fills max_length leaves no completion token.
        var max = _options.MaxLength;
        _pairs = pairs
            .Where(p => max is not { } m || _options.TruncationMode != DpoTruncation.KeepStart || p.PromptIds.Length < m)
            .Select(p => new Pair(Truncate(p.PromptIds, p.ChosenIds), Truncate(p.PromptIds, p.RejectedIds), p))
            .ToList();
        Dropped = pairs.Count - _pairs.Count;
        Truncated = pairs.Count(p => max is { } m && (p.PromptIds.Length + p.ChosenIds.Length > m || p.PromptIds.Length + p.RejectedIds.Length > m));
        if (_pairs.Count == 0)
            throw new LoraException($"every {role} pair's prompt fills max_length {max} tokens, leaving no completion token to score: raise max_length.");
        Lengths = _pairs.Select(p => Math.Max(p.Chosen.Ids.Length, p.Rejected.Ids.Length)).ToArray();
    }

    /// <summary>Pairs left out because their prompt alone fills max_length (keep_start).</summary>
    public int Dropped { get; }

    /// <summary>Pairs with a sequence cut to max_length.</summary>
    public int Truncated { get; }

    public IReadOnlyList<int> Lengths { get; }

    public DpoOptions Options => _options;

    public ReferenceModel Reference => _reference;

    public IObjectiveBatch Collate(IReadOnlyList<int> indices) => Build(indices);

    public ObjectiveLoss Loss(CausalLM model, IObjectiveBatch batch, Device device)
    {
        var b = (DpoBatch)batch;
        var s = Score(model, b, device);
        var loss = DpoLoss.PerPair(s.Chosen, s.Rejected, s.RefChosen, s.RefRejected, b.ChosenTokens.CopyTo(device), b.RejectedTokens.CopyTo(device), _options).sum();
        using var noGrad = no_grad();
        return new ObjectiveLoss(loss, Metrics(s));
    }

    public IReadOnlyDictionary<string, double> Evaluate(CausalLM model, Device device, int batchSize)
    {
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var chunk in Enumerable.Range(0, _pairs.Count).Chunk(batchSize))
        {
            using var scope = NewDisposeScope();
            using var batch = Build(chunk);
            var s = Score(model, batch, device);
            var loss = DpoLoss.PerPair(s.Chosen, s.Rejected, s.RefChosen, s.RefRejected, batch.ChosenTokens.CopyTo(device), batch.RejectedTokens.CopyTo(device), _options);
            sums["loss"] = sums.GetValueOrDefault("loss") + loss.sum().to(ScalarType.Float64).item<double>();
            foreach (var (name, value) in Metrics(s))
                sums[name] = sums.GetValueOrDefault(name) + value.to(ScalarType.Float64).item<double>();
        }

        return sums.ToDictionary(m => m.Key, m => m.Value / _pairs.Count, StringComparer.Ordinal);
    }

    /// <summary>TRL's <c>precompute_ref_log_probs</c>: the reference log-probs of every pair, computed once (in eval
    /// mode, no grad) and used from then on. Called by the first <see cref="Loss"/> or <see cref="Evaluate"/> when
    /// <see cref="DpoOptions.PrecomputeRefLogProbs"/> is set; call it yourself to choose when.</summary>
    public void PrecomputeReference(CausalLM model, Device device, int batchSize = 8)
    {
        var chosen = new double[_pairs.Count];
        var rejected = new double[_pairs.Count];
        var training = model.training;
        model.eval();
        try
        {
            using var noGrad = no_grad();
            foreach (var chunk in Enumerable.Range(0, _pairs.Count).Chunk(batchSize))
            {
                using var scope = NewDisposeScope();
                using var batch = Build(chunk, withReference: false);
                var (c, r) = ReferenceLogps(model, batch, device);
                var cv = c.to(ScalarType.Float64).cpu().data<double>().ToArray();
                var rv = r.to(ScalarType.Float64).cpu().data<double>().ToArray();
                for (var i = 0; i < chunk.Length; i++)
                    (chosen[chunk[i]], rejected[chunk[i]]) = (cv[i], rv[i]);
            }
        }
        finally
        {
            if (training)
                model.train();
        }

        (_refChosen, _refRejected) = (chosen, rejected);
    }

    private Dictionary<string, Tensor> Metrics(Scores s)
    {
        var chosenRewards = _options.Beta * (s.Chosen.detach() - s.RefChosen);
        var rejectedRewards = _options.Beta * (s.Rejected.detach() - s.RefRejected);
        return new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["rewards/chosen"] = chosenRewards.sum(),
            ["rewards/rejected"] = rejectedRewards.sum(),
            ["rewards/accuracies"] = chosenRewards.gt(rejectedRewards).to(ScalarType.Float32).sum(),
            ["rewards/margins"] = (chosenRewards - rejectedRewards).sum(),
            ["logps/chosen"] = s.Chosen.detach().sum(),
            ["logps/rejected"] = s.Rejected.detach().sum(),
        };
    }

    private sealed record Scores(Tensor Chosen, Tensor Rejected, Tensor RefChosen, Tensor RefRejected);

    private Scores Score(CausalLM model, DpoBatch batch, Device device)
    {
        if (_options.PrecomputeRefLogProbs && _refChosen is null)
        {
            PrecomputeReference(model, device);
            batch.AttachReference(_refChosen!, _refRejected!);
        }

        var ids = batch.InputIds.CopyTo(device);
        var mask = batch.AttentionMask.CopyTo(device);
        var logps = SequenceLogps(model.Forward(ids, mask), ids, batch.CompletionMask.CopyTo(device)); // (2B)
        var halves = logps.chunk(2);
        Tensor refChosen, refRejected;
        if (batch.RefChosen is not null)
        {
            (refChosen, refRejected) = (batch.RefChosen.CopyTo(device), batch.RefRejected!.CopyTo(device));
        }
        else
        {
            (refChosen, refRejected) = ReferenceLogps(model, batch, device);
        }

        return new Scores(halves[0], halves[1], refChosen, refRejected);
    }

    private (Tensor Chosen, Tensor Rejected) ReferenceLogps(CausalLM model, DpoBatch batch, Device device)
    {
        using var noGrad = no_grad();
        var ids = batch.InputIds.CopyTo(device);
        var logits = _reference.Logits(model, ids, batch.AttentionMask.CopyTo(device));
        var halves = SequenceLogps(logits, ids, batch.CompletionMask.CopyTo(device)).chunk(2);
        return (halves[0], halves[1]);
    }

    /// <summary>Σ over completion tokens of log p(token) <c>(B)</c>: TRL's shifted labels and completion mask.</summary>
    private static Tensor SequenceLogps(Tensor logits, Tensor ids, Tensor completionMask)
    {
        using var scope = NewDisposeScope();
        var perToken = TokenLogProbs.Shifted(logits, ids);                                  // (B, T-1)
        var mask = completionMask[.., 1..].to(perToken.dtype);
        return (perToken * mask).sum(1).MoveToOuterDisposeScope();
    }

    /// <summary>One truncated sequence: ids, and which of them are completion tokens.</summary>
    private sealed record Sequence(int[] Ids, int PromptTokens)
    {
        public int CompletionTokens => Ids.Length - PromptTokens;
    }

    private sealed record Pair(Sequence Chosen, Sequence Rejected, PreferenceExample Source);

    /// <summary><c>prompt + completion</c> cut to max_length as TRL's collator cuts it (keep_start / keep_end).</summary>
    private Sequence Truncate(int[] prompt, int[] completion)
    {
        int[] ids = [.. prompt, .. completion];
        if (_options.MaxLength is not { } max || ids.Length <= max)
            return new Sequence(ids, prompt.Length);
        return _options.TruncationMode == DpoTruncation.KeepStart
            ? new Sequence(ids[..max], Math.Min(prompt.Length, max))
            : new Sequence(ids[^max..], Math.Max(0, prompt.Length - (ids.Length - max)));
    }

    private DpoBatch Build(IReadOnlyList<int> indices, bool withReference = true)
    {
        var pairs = indices.Select(i => _pairs[i]).ToList();
        var rows = pairs.Select(p => p.Chosen).Concat(pairs.Select(p => p.Rejected)).ToList();
        var (ids, mask, tokens) = Padding.Right(rows.Select(r => r.Ids).ToList(), _padTokenId);
        var t = ids.shape[1];
        var completion = new long[rows.Count * t];
        for (var b = 0; b < rows.Count; b++)
        {
            for (var i = rows[b].PromptTokens; i < rows[b].Ids.Length; i++)
                completion[b * t + i] = 1;
        }

        var batch = new DpoBatch(ids, mask, tensor(completion, [rows.Count, t]),
            tensor(pairs.Select(p => (float)p.Chosen.CompletionTokens).ToArray()),
            tensor(pairs.Select(p => (float)p.Rejected.CompletionTokens).ToArray()),
            indices.ToArray(), tokens);
        if (withReference && _refChosen is not null)
            batch.AttachReference(_refChosen, _refRejected!);
        return batch;
    }

    /// <summary>Chosen rows then rejected rows, with their completion masks and counts, and precomputed reference
    /// log-probs when there are any.</summary>
    private sealed class DpoBatch(Tensor inputIds, Tensor attentionMask, Tensor completionMask, Tensor chosenTokens, Tensor rejectedTokens, int[] indices, long tokens) : IObjectiveBatch
    {
        public Tensor InputIds { get; } = inputIds;

        public Tensor AttentionMask { get; } = attentionMask;

        public Tensor CompletionMask { get; } = completionMask;

        public Tensor ChosenTokens { get; } = chosenTokens;

        public Tensor RejectedTokens { get; } = rejectedTokens;

        public Tensor? RefChosen { get; private set; }

        public Tensor? RefRejected { get; private set; }

        public long Normalizer { get; } = indices.Length;

        public long InputTokens { get; } = tokens;

        /// <summary>Picks this batch's pairs from the precomputed reference log-probs of every pair.</summary>
        public void AttachReference(double[] chosen, double[] rejected)
        {
            if (RefChosen is not null)
                return;
            RefChosen = tensor(indices.Select(i => (float)chosen[i]).ToArray()).DetachFromDisposeScope();
            RefRejected = tensor(indices.Select(i => (float)rejected[i]).ToArray()).DetachFromDisposeScope();
        }

        public void Dispose()
        {
            InputIds.Dispose();
            AttentionMask.Dispose();
            CompletionMask.Dispose();
            ChosenTokens.Dispose();
            RejectedTokens.Dispose();
            RefChosen?.Dispose();
            RefRejected?.Dispose();
        }
    }
}
