using Lora.Backend;
using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Training.Objectives.Rollout;

/// <summary>
/// Prompts and sampled completions laid out as TRL's online trainers lay them out: the prompt left-padded to width
/// P, the completion right-padded to width C, side by side (<c>(B, P + C)</c>), with the attention mask of the real
/// tokens (positions follow from it). Position P − 1 + t predicts completion token t.
/// </summary>
internal sealed class CompletionBatch : IDisposable
{
    private CompletionBatch(Tensor ids, Tensor mask, Tensor completionIds, Tensor completionMask, int promptWidth, long realTokens)
    {
        (InputIds, AttentionMask, CompletionIds, CompletionMask, PromptWidth, RealTokens) = (ids, mask, completionIds, completionMask, promptWidth, realTokens);
    }

    /// <summary><c>(B, P + C)</c> int64.</summary>
    public Tensor InputIds { get; }

    /// <summary><c>(B, P + C)</c> int64, 1 = real token.</summary>
    public Tensor AttentionMask { get; }

    /// <summary><c>(B, C)</c> int64, pad after each completion.</summary>
    public Tensor CompletionIds { get; }

    /// <summary><c>(B, C)</c> float32, 1 = a completion token.</summary>
    public Tensor CompletionMask { get; }

    public int PromptWidth { get; }

    public int CompletionWidth => (int)CompletionIds.shape[1];

    /// <summary>Real (non-padding) tokens.</summary>
    public long RealTokens { get; }

    /// <param name="prompts">The prompts' tokens.</param>
    /// <param name="completions">The completions' tokens.</param>
    /// <param name="padTokenId">Written on padding.</param>
    /// <param name="completionWidth">C, when it must match other tensors (default: the longest completion).</param>
    public static CompletionBatch Build(IReadOnlyList<int[]> prompts, IReadOnlyList<IReadOnlyList<int>> completions, int padTokenId, int? completionWidth = null)
    {
        var b = prompts.Count;
        var p = Math.Max(1, prompts.Max(x => x.Length));
        var c = completionWidth ?? Math.Max(1, completions.Max(x => x.Count));
        var ids = new long[b * (p + c)];
        var mask = new long[b * (p + c)];
        var compIds = new long[b * c];
        var compMask = new float[b * c];
        long real = 0;
        for (var i = 0; i < b; i++)
        {
            var prompt = prompts[i];
            var offset = p - prompt.Length;
            for (var t = 0; t < p; t++)
            {
                var isReal = t >= offset;
                ids[i * (p + c) + t] = isReal ? prompt[t - offset] : padTokenId;
                mask[i * (p + c) + t] = isReal ? 1 : 0;
            }

            for (var t = 0; t < c; t++)
            {
                var isReal = t < completions[i].Count;
                var token = isReal ? completions[i][t] : padTokenId;
                ids[i * (p + c) + p + t] = token;
                mask[i * (p + c) + p + t] = isReal ? 1 : 0;
                compIds[i * c + t] = token;
                compMask[i * c + t] = isReal ? 1 : 0;
            }

            real += prompt.Length + completions[i].Count;
        }

        return new CompletionBatch(tensor(ids, [b, p + c]), tensor(mask, [b, p + c]), tensor(compIds, [b, c]), tensor(compMask, [b, c]), p, real);
    }

    /// <summary>The logits <c>(B, C, V)</c> that predict the completion tokens, divided by
    /// <paramref name="temperature"/> (TRL scores completions under the sampling temperature).</summary>
    public Tensor CompletionLogits(Tensor logits, double temperature)
    {
        using var scope = NewDisposeScope();
        var slice = logits[.., (PromptWidth - 1)..(PromptWidth - 1 + CompletionWidth), ..].to(ScalarType.Float32);
        return (temperature == 1 ? slice : slice / temperature).MoveToOuterDisposeScope();
    }

    /// <summary>The completion tokens' log-probs <c>(B, C)</c> under the model <paramref name="forward"/> runs, and
    /// the completion logits.</summary>
    public (Tensor Logps, Tensor Logits) Logps(Func<Tensor, Tensor, Tensor> forward, Device device, double temperature)
    {
        using var scope = NewDisposeScope();
        var logits = CompletionLogits(forward(InputIds.CopyTo(device), AttentionMask.CopyTo(device)), temperature);
        var logps = TokenLogProbs.Of(logits, CompletionIds.CopyTo(device));
        return (logps.MoveToOuterDisposeScope(), logits.MoveToOuterDisposeScope());
    }

    public static Func<Tensor, Tensor, Tensor> ForwardOf(CausalLM model) => (ids, mask) => model.Forward(ids, mask);

    public void Dispose()
    {
        InputIds.Dispose();
        AttentionMask.Dispose();
        CompletionIds.Dispose();
        CompletionMask.Dispose();
    }
}
