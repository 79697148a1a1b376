using Lora.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Generation;

/// <summary>
/// Autoregressive decoding with a KV cache: one forward pass over the (left-padded) prompts, then one token per
/// step (or, with <see cref="GenerationOptions.UseCache"/> off, a pass over the whole sequence each step). Greedy or
/// sampled (repetition penalty → temperature → top-k → top-p, as transformers orders them). Prompt-learning adapters
/// enter every pass through <see cref="CausalLM.Forward"/>; the cache remembers their virtual positions.
/// <para>
/// The cache is preallocated for the whole call (<see cref="CausalLM.NewCache(long)"/>), each pass computes the logits
/// of its last position only (<see cref="CausalLM.ForwardLastLogits"/>), and without <c>onToken</c>/<c>stop</c>
/// callbacks the tokens stay on the device until the end (see docs/generation.md).
/// </para>
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
        var total = width + options.MaxNewTokens; // every column the sequences can reach
        // The ids (prompt, then each step's tokens) and the attention mask live in buffers of the final width, written
        // in place and read as views of the filled prefix, instead of a cat per token (transformers'
        // _update_model_kwargs_for_generation appends a column of ones to the mask each step). Generated columns
        // are always attended, so the mask is complete from the start.
        var ids = new long[batch * total];
        var maskValues = new long[batch * total];
        var positions = new long[batch];
        for (var b = 0; b < batch; b++)
        {
            var offset = width - prompts[b].Count; // left padding
            for (var i = 0; i < total; i++)
            {
                ids[b * total + i] = i < offset ? padTokenId : i < width ? prompts[b][i - offset] : padTokenId;
                maskValues[b * total + i] = i < offset ? 0 : 1;
            }

            positions[b] = prompts[b].Count;
        }

        var generated = Enumerable.Range(0, batch).Select(_ => new List<int>()).ToArray();
        var reasons = Enumerable.Repeat(FinishReason.Length, batch).ToArray();
        var finished = new bool[batch];
        using var generator = options.Seed is { } seed ? new Generator((ulong)seed, device) : null;
        var stopIds = options.StopTokenIds.ToHashSet();
        // Without callbacks nothing on the host needs a token before the end: chosen tokens, finished flags and the
        // pad substitution stay on the device, and the host only asks every few steps (every step on the CPU)
        // whether all rows finished.
        var onDevice = onToken is null && stop is null;
        var interval = CheckInterval(device);

        model.eval();
        using var noGrad = no_grad();
        using var cache = options.UseCache ? model.NewCache(total + VirtualTokens(model)) : null;
        var seen = tensor(ids, [batch, total], device: device).DetachFromDisposeScope();
        // Without left padding the mask is all ones: pass none, so attention stays unmasked (causal prefill, decode
        // steps over every key) on the kernels' fastest path, with grouped-query K/V unrepeated (transformers skips an
        // all-true mask the same way: sdpa_mask's allow_is_causal_skip, masking_utils.py).
        var padded = prompts.Any(p => p.Count < width);
        var mask = padded ? tensor(maskValues, [batch, total], device: device).DetachFromDisposeScope() : null;
        // Decode-step position ids: transformers derives them as cumsum(mask) - 1 for the last column, which for a
        // column of ones is the row's prompt length + step - 1; one in-place add per step keeps them.
        var position = tensor(positions, [batch, 1], device: device).DetachFromDisposeScope();
        var stopTensor = onDevice && stopIds.Count > 0 ? tensor(stopIds.Select(t => (long)t).ToArray(), device: device).DetachFromDisposeScope() : null;
        var done = onDevice ? zeros([batch, 1], ScalarType.Bool, device).DetachFromDisposeScope() : null;
        var steps = 0;
        try
        {
            for (var step = 0; step < options.MaxNewTokens && !finished.All(f => f); step++)
            {
                using var scope = NewDisposeScope();
                var length = width + step;
                var seenNow = seen.narrow(1, 0, length);
                var maskNow = mask?.narrow(1, 0, length);
                // Logits of the last position only (transformers' generate passes logits_to_keep=1): the prefill
                // does not project every prompt position onto the vocabulary.
                var logits = cache is null ? model.ForwardLastLogits(seenNow, maskNow)
                    : step == 0 ? model.ForwardLastLogits(seenNow, maskNow, null, cache)
                    : model.ForwardLastLogits(seen.narrow(1, length - 1, 1), maskNow, position, cache);
                if (cache is not null && step > 0)
                    position.add_(1);
                var scores = logits[.., -1, ..].to(ScalarType.Float32);
                scores = LogitsProcessor.RepetitionPenalty(scores, seenNow, options.RepetitionPenalty);
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

                steps = step + 1;
                if (onDevice)
                {
                    // transformers' _sample: next_tokens * unfinished + pad * (1 - unfinished), then
                    // unfinished &= ~stopping_criteria (EOS); the flags stay on the device.
                    next = next.masked_fill(done!, padTokenId);
                    seen.narrow(1, length, 1).copy_(next);
                    if (stopTensor is not null)
                    {
                        done!.logical_or_(isin(next, stopTensor));
                        if (steps % interval == 0 && done.all().item<bool>())
                            break;
                    }

                    continue;
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

                seen.narrow(1, length, 1).copy_(tensor(chosen, [batch, 1], device: device));
            }

            if (onDevice && steps > 0)
            {
                // One read of every generated column; a row's output ends at its first stop token, as the per-token
                // path stops adding to it (the pads the device wrote after it are not part of the output).
                using var view = seen.narrow(1, width, steps);
                using var columns = view.cpu();
                var tokens = columns.data<long>().ToArray();
                for (var b = 0; b < batch; b++)
                {
                    for (var i = 0; i < steps; i++)
                    {
                        var token = (int)tokens[b * steps + i];
                        generated[b].Add(token);
                        if (stopIds.Contains(token))
                        {
                            reasons[b] = FinishReason.StopToken;
                            break;
                        }
                    }
                }
            }
        }
        finally
        {
            seen.Dispose();
            mask?.Dispose();
            position.Dispose();
            stopTensor?.Dispose();
            done?.Dispose();
        }

        return Enumerable.Range(0, batch).Select(b => new GeneratedSequence(generated[b], reasons[b])).ToList();
    }

    /// <summary>Steps between the device path's "have all rows finished?" reads on an accelerator: up to this many - 1
    /// steps run after the last row finished (their tokens are dropped), in exchange for no host sync on the other
    /// steps. On the CPU, whose kernels run synchronously, a read costs no idle time, so it is read every step and no
    /// step is wasted.</summary>
    internal const int FinishedCheckInterval = 8;

    /// <summary>Tests: the interval to use on this thread instead (0: by device).</summary>
    [ThreadStatic]
    internal static int FinishedCheckIntervalOverride;

    private static int CheckInterval(Device device) =>
        FinishedCheckIntervalOverride > 0 ? FinishedCheckIntervalOverride : device.type == DeviceType.CPU ? 1 : FinishedCheckInterval;

    /// <summary>Virtual positions the active prompt-learning adapter puts into the cache (0 without one).</summary>
    private static int VirtualTokens(CausalLM model) => model.ActivePrompt is Peft.PromptHost host ? host.Active.VirtualTokens : 0;
}
