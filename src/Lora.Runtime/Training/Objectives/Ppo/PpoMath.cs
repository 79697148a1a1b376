using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Ppo;

/// <summary>A processed rollout: TRL's tensors after "Response Processing" and GAE, each <c>(B, T)</c> over the
/// response positions (<see cref="Scores"/> is <c>(B)</c>).</summary>
public sealed record PpoRollout(Tensor Logprobs, Tensor RefLogprobs, Tensor Values, Tensor PaddingMask, Tensor PaddingMaskP1,
    Tensor Kl, Tensor NonScoreReward, Tensor Rewards, Tensor Advantages, Tensor Returns, Tensor Scores) : IDisposable
{
    public void Dispose()
    {
        foreach (var t in new[] { Logprobs, RefLogprobs, Values, PaddingMask, PaddingMaskP1, Kl, NonScoreReward, Rewards, Advantages, Returns, Scores })
            t.Dispose();
    }
}

/// <summary>One mini-batch step's losses and statistics (TRL's names in the comments).</summary>
public sealed record PpoLoss(Tensor Loss, Tensor PolicyLoss, Tensor ValueLoss, Tensor PolicyClipFraction, Tensor ValueClipFraction, Tensor ApproxKl, Tensor RatioMean);

/// <summary>
/// PPO's formulas, transcribed from TRL's experimental PPO (<c>trl/experimental/ppo/ppo_trainer.py</c>,
/// <c>PPOTrainer.train</c> and the helpers of that file; <c>first_true_indices</c> from <c>trl/trainer/utils.py</c>).
/// <code>
///   L      = index of the last response token (first pad − 1)            padding_mask = t &gt; L,  padding_mask_p1 = t &gt; L + 1
///   logp   = log π(o_t) and log π_ref(o_t) with padding set to 1 (INVALID_LOGPROB); values 0 past L + 1
///   kl_t   = k1: −(log π_ref − log π)     k3: (e^(log π_ref − log π) − 1) − (log π_ref − log π)
///   r_t    = −kl_coef · kl_t,  plus the score at t = L + 1 (or L when L + 1 is past the end)
///   (whiten_rewards: r whitened over t ≤ L + 1 keeping its mean, 0 past it)
///   GAE    δ_t = r_t + γ V_{t+1} − V_t;  A_t = δ_t + γλ A_{t+1};  returns = A + V;  A whitened over t ≤ L, 0 past it
///   step   ρ = exp(log π_new − log π_old)
///          L_pg = mean_{t ≤ L} max(−A ρ, −A clamp(ρ, 1 − ε, 1 + ε))
///          L_vf = ½ mean_{t ≤ L+1} max((V' − R)², (clamp(V', V − ε_v, V + ε_v) − R)²)
///          loss = L_pg + vf_coef · L_vf
/// </code>
/// </summary>
public static class PpoMath
{
    /// <summary>TRL's <c>INVALID_LOGPROB</c>.</summary>
    public const double InvalidLogprob = 1.0;

    /// <summary>TRL's <c>first_true_indices</c>: per row, the index of the first true, or the row length.</summary>
    public static Tensor FirstTrueIndices(Tensor bools)
    {
        using var scope = NewDisposeScope();
        var rowLength = bools.shape[^1];
        var zeroOrIndex = rowLength * bools.logical_not().to(ScalarType.Int64) + arange(rowLength, ScalarType.Int64, bools.device);
        return zeroOrIndex.min(-1).values.MoveToOuterDisposeScope();
    }

    public static Tensor MaskedMean(Tensor values, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var m = mask.to(values.dtype);
        return ((values * m).sum() / m.sum()).MoveToOuterDisposeScope();
    }

    /// <summary>TRL's <c>masked_var</c> (unbiased: × n / (n − 1)).</summary>
    public static Tensor MaskedVar(Tensor values, Tensor mask, bool unbiased = true)
    {
        using var scope = NewDisposeScope();
        var mean = MaskedMean(values, mask);
        var variance = MaskedMean((values - mean).square(), mask);
        if (unbiased)
        {
            var n = mask.to(values.dtype).sum();
            if (n.to(ScalarType.Float64).item<double>() <= 1)
                throw new LoraException("whitening needs at least two unmasked values (raise the mini-batch size or the gradient accumulation steps).");
            variance = variance * (n / (n - 1));
        }

        return variance.MoveToOuterDisposeScope();
    }

    /// <summary>TRL's <c>masked_whiten</c>: (x − mean) / √(var + 1e-8), the mean added back unless
    /// <paramref name="shiftMean"/>.</summary>
    public static Tensor MaskedWhiten(Tensor values, Tensor mask, bool shiftMean = true)
    {
        using var scope = NewDisposeScope();
        var mean = MaskedMean(values, mask);
        var whitened = (values - mean) * (MaskedVar(values, mask) + 1e-8).rsqrt();
        if (!shiftMean)
            whitened = whitened + mean;
        return whitened.MoveToOuterDisposeScope();
    }

    /// <summary>Generalised advantage estimation over the response positions (TRL's loop, last position's next value 0).</summary>
    public static (Tensor Advantages, Tensor Returns) Gae(Tensor rewards, Tensor values, double gamma, double lam)
    {
        using var scope = NewDisposeScope();
        var length = rewards.shape[1];
        var reversed = new List<Tensor>();
        Tensor last = zeros_like(rewards[.., 0]);
        for (var t = length - 1; t >= 0; t--)
        {
            var next = t < length - 1 ? values[.., t + 1] : zeros_like(values[.., t]);
            var delta = rewards[.., t] + gamma * next - values[.., t];
            last = delta + gamma * lam * last;
            reversed.Add(last);
        }

        reversed.Reverse();
        var advantages = stack(reversed, 1);
        var returns = advantages + values;
        return (advantages.MoveToOuterDisposeScope(), returns.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// TRL's rollout processing (steps 3 to 6): masks, the per-token KL penalty, the score at the sequence's end, the
    /// optional reward whitening, GAE and advantage whitening. <paramref name="responses"/> is <c>(B, T)</c>, padded
    /// with <paramref name="padTokenId"/> after each response's last token; the log-probs and values are raw.
    /// </summary>
    public static PpoRollout Process(Tensor responses, Tensor logprobs, Tensor refLogprobs, Tensor values, Tensor scores, PpoOptions options, long padTokenId, long? eosTokenId)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        var (b, t) = (responses.shape[0], responses.shape[1]);
        var device = responses.device;
        var sequenceLengths = FirstTrueIndices(responses.eq(padTokenId)) - 1;                    // (B)
        if (options.MissingEosPenalty is { } penalty && eosTokenId is { } eos)
        {
            var containEos = responses.eq(eos).any(-1);
            scores = scores - containEos.logical_not().to(scores.dtype) * penalty;
        }

        var responseIdxs = arange(t, ScalarType.Int64, device).unsqueeze(0).expand(b, t);
        var paddingMask = responseIdxs.gt(sequenceLengths.unsqueeze(1));
        var lp = logprobs.masked_fill(paddingMask, InvalidLogprob);
        var rlp = refLogprobs.masked_fill(paddingMask, InvalidLogprob);
        var sequenceLengthsP1 = sequenceLengths + 1;
        var paddingMaskP1 = responseIdxs.gt(sequenceLengthsP1.unsqueeze(1));
        var v = values.masked_fill(paddingMaskP1, 0);

        var logr = rlp - lp;
        var kl = options.KlEstimator == KlEstimator.K1 ? -logr : logr.exp() - 1 - logr;
        var nonScoreReward = -options.KlCoef * kl;
        var actualEnd = where(sequenceLengthsP1.lt(t), sequenceLengthsP1, sequenceLengths);
        var rewards = nonScoreReward.clone();
        rewards = rewards + nn.functional.one_hot(actualEnd, t).to(rewards.dtype) * scores.unsqueeze(1);   // rewards[i, end_i] += score_i
        if (options.WhitenRewards)
        {
            rewards = MaskedWhiten(rewards, paddingMaskP1.logical_not(), shiftMean: false);
            rewards = rewards.masked_fill(paddingMaskP1, 0);
        }

        var (advantages, returns) = Gae(rewards, v, options.Gamma, options.Lam);
        advantages = MaskedWhiten(advantages, paddingMask.logical_not());
        advantages = advantages.masked_fill(paddingMask, 0);
        var result = new PpoRollout(lp, rlp, v, paddingMask, paddingMaskP1, kl, nonScoreReward, rewards, advantages, returns, scores.clone());
        foreach (var tensor in new[] { lp, rlp, v, paddingMask, paddingMaskP1, kl, nonScoreReward, rewards, advantages, returns, result.Scores })
            tensor.MoveToOuterDisposeScope();
        return result;
    }

    /// <summary>The clipped policy and value losses of one micro-batch (TRL's minibatch step; the raw new log-probs
    /// and value predictions are masked here as there).</summary>
    public static PpoLoss Loss(Tensor newLogprobs, Tensor oldLogprobs, Tensor advantages, Tensor valuePredictions, Tensor oldValues, Tensor returns,
        Tensor paddingMask, Tensor paddingMaskP1, PpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        var lp = newLogprobs.masked_fill(paddingMask, InvalidLogprob);
        var vpred = valuePredictions.masked_fill(paddingMaskP1, 0);
        var vpredClipped = vpred.clamp(oldValues - options.CliprangeValue, oldValues + options.CliprangeValue);
        var vfLosses1 = (vpred - returns).square();
        var vfLosses2 = (vpredClipped - returns).square();
        var vfLoss = 0.5 * MaskedMean(maximum(vfLosses1, vfLosses2), paddingMaskP1.logical_not());
        var vfClipfrac = MaskedMean(vfLosses2.gt(vfLosses1).to(vpred.dtype), paddingMaskP1.logical_not());
        var diff = lp - oldLogprobs;
        var ratio = diff.exp();
        var pgLosses = -advantages * ratio;
        var pgLosses2 = -advantages * ratio.clamp(1.0 - options.Cliprange, 1.0 + options.Cliprange);
        var pgLoss = MaskedMean(maximum(pgLosses, pgLosses2), paddingMask.logical_not());
        var loss = pgLoss + options.VfCoef * vfLoss;
        Tensor pgClipfrac, approxKl, ratioMean;
        using (no_grad())
        {
            pgClipfrac = MaskedMean(pgLosses2.gt(pgLosses).to(lp.dtype), paddingMask.logical_not());
            approxKl = 0.5 * diff.detach().square().mean();
            ratioMean = ratio.detach().mean();
        }

        var result = new PpoLoss(loss, pgLoss, vfLoss, pgClipfrac, vfClipfrac, approxKl, ratioMean);
        foreach (var tensor in new[] { loss, pgLoss, vfLoss, pgClipfrac, vfClipfrac, approxKl, ratioMean })
            tensor.MoveToOuterDisposeScope();
        return result;
    }
}
