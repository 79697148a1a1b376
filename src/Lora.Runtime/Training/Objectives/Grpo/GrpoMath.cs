using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Grpo;

/// <summary>The rewards of a generation batch turned into advantages, with TRL's logged statistics.</summary>
/// <param name="Rewards">Σ_k w_k r_k per completion (NaN where no reward applied).</param>
/// <param name="Advantages">Group-normalised advantages (0 where no reward applied).</param>
/// <param name="Reward">TRL's <c>reward</c>: mean of <see cref="Rewards"/>.</param>
/// <param name="RewardStd">TRL's <c>reward_std</c>.</param>
/// <param name="FracRewardZeroStd">TRL's <c>frac_reward_zero_std</c>: share of completions whose group (or batch)
/// std is 0 (no learning signal).</param>
/// <param name="MeanPerFunction">TRL's <c>rewards/{name}/mean</c>.</param>
/// <param name="StdPerFunction">TRL's <c>rewards/{name}/std</c>.</param>
public sealed record GrpoAdvantages(double[] Rewards, double[] Advantages, double Reward, double RewardStd, double FracRewardZeroStd,
    double[] MeanPerFunction, double[] StdPerFunction);

/// <summary>
/// GRPO's formulas, transcribed from TRL (<c>trl/trainer/grpo_trainer.py</c>): the advantages of
/// <c>_generate_and_score_completions</c> (<c>multi_objective_aggregation="sum_then_normalize"</c>) and the per-token
/// loss of <c>_compute_loss</c> (<c>importance_sampling_level="token"</c>).
/// <code>
///   r_i   = Σ_k w_k · r_ik                                   (NaN-sum; NaN when every r_ik is NaN)
///   A_i   = (r_i − mean_group(r)) / (std(r) + 1e-4)           std over the group, the batch, or none (A_i = r_i − mean)
///   ρ_t   = exp(log π_θ(o_t) − log π_old(o_t))                π_old = π_θ.detach() when num_iterations = 1
///   ℓ_t   = −min(ρ_t·A, clamp(ρ_t, 1 − ε, 1 + ε_high)·A) + β·(exp(q_t − p_t) − (q_t − p_t) − 1)   p = log π_θ, q = log π_ref
/// </code>
/// std is the unbiased (Bessel) std of TRL's <c>nanstd</c>.
/// </summary>
public static class GrpoMath
{
    /// <param name="rewardsPerFunction">(N, K): completion i, reward k; groups of <paramref name="numGenerations"/>
    /// consecutive completions share a prompt.</param>
    /// <param name="weights">TRL's <c>reward_weights</c>, one per reward.</param>
    /// <param name="numGenerations">G: completions per prompt.</param>
    /// <param name="scale">TRL's <c>scale_rewards</c>.</param>
    public static GrpoAdvantages Advantages(double[,] rewardsPerFunction, IReadOnlyList<double> weights, int numGenerations, GrpoScaleRewards scale)
    {
        var n = rewardsPerFunction.GetLength(0);
        var k = rewardsPerFunction.GetLength(1);
        if (weights.Count != k)
            throw new ArgumentException($"{weights.Count} weights for {k} rewards.", nameof(weights));
        if (n % numGenerations != 0)
            throw new ArgumentException($"{n} completions are not whole groups of {numGenerations}.", nameof(rewardsPerFunction));
        var rewards = new double[n];
        for (var i = 0; i < n; i++)
        {
            var any = false;
            double sum = 0;
            for (var j = 0; j < k; j++)
            {
                if (double.IsNaN(rewardsPerFunction[i, j]))
                    continue;
                any = true;
                sum += rewardsPerFunction[i, j] * weights[j];
            }

            rewards[i] = any ? sum : double.NaN;
        }

        var mean = new double[n];
        var std = new double[n];
        for (var g = 0; g < n / numGenerations; g++)
        {
            var group = rewards.AsSpan(g * numGenerations, numGenerations);
            var (m, s) = (NanMean(group), NanStd(group));
            for (var i = 0; i < numGenerations; i++)
                (mean[g * numGenerations + i], std[g * numGenerations + i]) = (m, s);
        }

        if (scale == GrpoScaleRewards.Batch)
            Array.Fill(std, n > 1 ? NanStd(rewards) : 0);
        var advantages = new double[n];
        var zeroStd = 0;
        for (var i = 0; i < n; i++)
        {
            var a = rewards[i] - mean[i];
            if (scale != GrpoScaleRewards.None)
                a /= std[i] + 1e-4;
            advantages[i] = double.IsNaN(a) ? 0 : a;            // torch.nan_to_num(advantages, nan=0.0)
            if (Math.Abs(std[i]) <= 1e-8)                      // torch.isclose(std, 0)
                zeroStd++;
        }

        var column = new double[n];
        var meanPer = new double[k];
        var stdPer = new double[k];
        for (var j = 0; j < k; j++)
        {
            for (var i = 0; i < n; i++)
                column[i] = rewardsPerFunction[i, j];
            (meanPer[j], stdPer[j]) = (NanMean(column), NanStd(column));
        }

        return new GrpoAdvantages(rewards, advantages, NanMean(rewards), NanStd(rewards), (double)zeroStd / n, meanPer, stdPer);
    }

    /// <summary>ℓ_t <c>(B, T)</c>, the KL term <c>(B, T)</c> (null when β = 0) and the ratio ρ_t.</summary>
    public static (Tensor Loss, Tensor? Kl, Tensor Ratio) PerTokenLoss(Tensor logps, Tensor oldLogps, Tensor? refLogps, Tensor advantages, GrpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        var a = advantages.ndim == 1 ? advantages.unsqueeze(1) : advantages;          // (B, 1)
        var ratio = (logps - oldLogps).exp();
        var clipped = ratio.clamp(1 - options.Epsilon, 1 + (options.EpsilonHigh ?? options.Epsilon));
        var loss = -minimum(ratio * a, clipped * a);
        Tensor? kl = null;
        if (options.Beta != 0)
        {
            var d = refLogps! - logps;
            kl = d.exp() - d - 1;
            loss = loss + options.Beta * kl;
        }

        return (loss.MoveToOuterDisposeScope(), kl?.MoveToOuterDisposeScope(), ratio.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The loss of a batch of completions as a sum, for <paramref name="type"/>; the trainer divides the sum of the
    /// sums by the sum of the <see cref="Normalizer"/>s over the accumulated micro-batches, which is TRL's loss of the
    /// whole generation batch (dapo: Σ masked ℓ / completion tokens; grpo: Σ_seq (Σ_t ℓ / n_seq) / sequences; dr_grpo:
    /// Σ masked ℓ / (sequences · max_completion_length)).
    /// </summary>
    public static Tensor Reduce(Tensor perToken, Tensor mask, GrpoLossType type)
    {
        using var scope = NewDisposeScope();
        var masked = perToken * mask;
        var sum = type == GrpoLossType.Grpo ? (masked.sum(-1) / mask.sum(-1).clamp_min(1)).sum() : masked.sum();
        return sum.MoveToOuterDisposeScope();
    }

    /// <summary>What <see cref="Reduce"/>'s sum is divided by, for <paramref name="sequences"/> completions with
    /// <paramref name="tokens"/> completion tokens in the loss.</summary>
    public static long Normalizer(GrpoLossType type, int sequences, long tokens, int maxCompletionLength) => type switch
    {
        GrpoLossType.Dapo => tokens,
        GrpoLossType.Grpo => sequences,
        _ => (long)sequences * maxCompletionLength,
    };

    /// <summary>TRL's clipping statistics (token masks): low (ρ &lt; 1 − ε and A &lt; 0), high (ρ &gt; 1 + ε_high
    /// and A &gt; 0), and either.</summary>
    public static (Tensor Low, Tensor High, Tensor Region) Clipped(Tensor ratio, Tensor advantages, GrpoOptions options)
    {
        using var scope = NewDisposeScope();
        var a = advantages.ndim == 1 ? advantages.unsqueeze(1) : advantages;
        var low = ratio.lt(1 - options.Epsilon).logical_and(a.lt(0));
        var high = ratio.gt(1 + (options.EpsilonHigh ?? options.Epsilon)).logical_and(a.gt(0));
        return (low.MoveToOuterDisposeScope(), high.MoveToOuterDisposeScope(), low.logical_or(high).MoveToOuterDisposeScope());
    }

    private static double NanMean(ReadOnlySpan<double> values)
    {
        double sum = 0;
        var count = 0;
        foreach (var v in values)
        {
            if (double.IsNaN(v))
                continue;
            sum += v;
            count++;
        }

        return count == 0 ? double.NaN : sum / count;
    }

    /// <summary>TRL's <c>nanstd</c>: the unbiased std of the non-NaN values.</summary>
    private static double NanStd(ReadOnlySpan<double> values)
    {
        var mean = NanMean(values);
        double sum = 0;
        var count = 0;
        foreach (var v in values)
        {
            if (double.IsNaN(v))
                continue;
            sum += (v - mean) * (v - mean);
            count++;
        }

        return Math.Sqrt(sum / count * count / (count - 1));
    }
}
