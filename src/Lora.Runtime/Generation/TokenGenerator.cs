using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generation;

/// <summary>
/// Autoregressive decoding with a KV cache: one forward pass over the (left-padded) prompts, then one token per
/// step (or, with <see cref="GenerationOptions.UseCache"/> off, a pass over the whole sequence each step). Greedy or
/// sampled (repetition penalty → temperature → top-k → top-p, as transformers orders them). Prompt-learning adapters
/// enter every pass through <see cref="CausalLM.Forward"/>; the cache remembers their virtual positions.
/// </summary>
public static class TokenGenerator
{
    /// <summary>Called for each new token of an unfinished sequence: (sequence index, token id).</summary>
    public delegate void TokenCallback(int sequence, int token);

    /// <summary>Asked after each new token: true stops that sequence (e.g. its decoded text hit a stop string).</summary>
    public delegate bool StopCondition(int sequence, IReadOnlyList<int> generated);

    /// <summary>Generates a continuation for each prompt (a batch, left-padded with <paramref name="padTokenId"/>).</summary>
    public static IReadOnlyList<GeneratedSequence> Generate(
        CausalLM model,
        IReadOnlyList<IReadOnlyList<int>> prompts,
        GenerationOptions options,
        int padTokenId = 0,
        TokenCallback? onToken = null,
        StopCondition? stop = null)
    {
        options.Validate();
        if (prompts.Count == 0)
            return [];
        if (prompts.Any(p => p.Count == 0))
            throw new LoraException("Every prompt needs at least one token (add the BOS token for an empty text).");

        var device = model.parameters().First().device;
        var batch = prompts.Count;
        var width = prompts.Max(p => p.Count);
        var ids = new long[batch * width];
        var maskValues = new long[batch * width];
        for (var b = 0; b < batch; b++)
        {
            var offset = width - prompts[b].Count; // left padding
            for (var i = 0; i < width; i++)
            {
                ids[b * width + i] = i < offset ? padTokenId : prompts[b][i - offset];
                maskValues[b * width + i] = i < offset ? 0 : 1;
            }
        }

        var generated = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var reasons = Enumerable.Repeat(FinishReason.Length, batch).ToArray();
        var finished = new bool[batch];
        using var generator = options.Seed is { } seed ? new Generator((ulong)seed, device) : null;
        var stopIds = options.StopTokenIds.ToHashSet();

        model.eval();
        using var noGrad = no_grad();
        using var cache = options.UseCache ? model.NewCache() : null;
        var seen = tensor(ids, [batch, width], device: device).DetachFromDisposeScope();
        var mask = tensor(maskValues, [batch, width], device: device).DetachFromDisposeScope();
        var stepInput = seen.alias().DetachFromDisposeScope();
        try
        {
            for (var step = 0; step < options.MaxNewTokens && !finished.All(f => f); step++)
            {
                using var scope = NewDisposeScope();
                var logits = cache is null ? model.Forward(seen, mask) : model.Forward(stepInput, mask, null, cache);
                var scores = logits[.., -1, ..].to(ScalarType.Float32);
                scores = LogitsProcessor.RepetitionPenalty(scores, seen, options.RepetitionPenalty);
                Tensor next;
                if (options.DoSample)
                {
                    scores = LogitsProcessor.Temperature(scores, options.Temperature);
                    scores = LogitsProcessor.TopK(scores, options.TopK);
                    scores = LogitsProcessor.TopP(scores, options.TopP);
                    next = multinomial(scores.softmax(-1), 1, generator: generator);
                }
                else
                {
                    next = scores.argmax(-1, keepdim: true);
                }

                var chosen = next.cpu().data<long>().ToArray();
                for (var b = 0; b < batch; b++)
                {
                    if (finished[b])
                    {
                        chosen[b] = padTokenId;
                        continue;
                    }

                    var token = (int)chosen[b];
                    generated[b].Add(token);
                    onToken?.Invoke(b, token);
                    if (stopIds.Contains(token))
                        (finished[b], reasons[b]) = (true, FinishReason.StopToken);
                    else if (stop?.Invoke(b, generated[b]) == true)
                        (finished[b], reasons[b]) = (true, FinishReason.StopCondition);
                }

                next = tensor(chosen, [batch, 1], device: device);
                Replace(ref seen, cat([seen, next], 1));
                Replace(ref mask, cat([mask, ones(batch, 1, dtype: ScalarType.Int64, device: device)], 1));
                Replace(ref stepInput, next);
            }
        }
        finally
        {
            seen.Dispose();
            mask.Dispose();
            stepInput.Dispose();
        }

        return Enumerable.Range(0, batch).Select(b => new GeneratedSequence(generated[b], reasons[b])).ToList();
    }

    private static void Replace(ref Tensor slot, Tensor value)
    {
        var old = slot;
        slot = value.DetachFromDisposeScope();
        old.Dispose();
    }
}
