using Lora.Models;
using Lora.Tokenization;

namespace Lora.Generation;

/// <summary>A prompt's completion as text, and the tokens behind it.</summary>
public sealed record TextCompletion(string Text, GeneratedSequence Sequence);

/// <summary>
/// Text in, text out, over <see cref="TokenGenerator"/>: prompts are encoded with the tokenizer's special tokens (as
/// training encodes them), generated in left-padded batches, and the new tokens decoded without the stop tokens and
/// special tokens. <c>lora generate</c> and <see cref="Evaluation.ExactMatchEvaluator"/> both decode this way, so an
/// answer scored by the evaluator is the answer the command prints.
/// </summary>
public static class TextGenerator
{
    /// <summary>The ids that end a completion: the model's <c>eos_token_id</c>s and the tokenizer's eos.</summary>
    public static IReadOnlyList<int> StopTokenIds(CausalLM model, HfTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        var ids = model.Config.EosTokenIds.ToList();
        if (tokenizer.EosTokenId is { } eos && !ids.Contains(eos))
            ids.Add(eos);
        return ids;
    }

    /// <summary>The text of generated <paramref name="ids"/>: stop tokens and special tokens dropped.</summary>
    public static string Decode(HfTokenizer tokenizer, IEnumerable<int> ids, IReadOnlyCollection<int> stopTokenIds)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return tokenizer.Decode(ids.Where(i => !stopTokenIds.Contains(i)), skipSpecialTokens: true);
    }

    /// <summary>Completes each prompt, <paramref name="batchSize"/> at a time. When
    /// <see cref="GenerationOptions.StopTokenIds"/> is empty, <see cref="StopTokenIds"/> are used.</summary>
    public static IReadOnlyList<TextCompletion> Generate(CausalLM model, HfTokenizer tokenizer, IReadOnlyList<string> prompts,
        GenerationOptions options, bool addSpecialTokens = true, int batchSize = 16)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        if (batchSize < 1)
            throw new LoraException($"batch size must be >= 1 (got {batchSize}).");
        if (options.StopTokenIds.Count == 0)
            options = options with { StopTokenIds = StopTokenIds(model, tokenizer) };
        var pad = tokenizer.PadTokenId ?? model.Config.PadTokenId ?? 0;
        var results = new List<TextCompletion>(prompts.Count);
        foreach (var chunk in prompts.Chunk(batchSize))
        {
            var ids = chunk.Select(p => (IReadOnlyList<int>)tokenizer.Encode(p, addSpecialTokens)).ToList();
            foreach (var sequence in TokenGenerator.Generate(model, ids, options, pad))
                results.Add(new TextCompletion(Decode(tokenizer, sequence.Tokens, options.StopTokenIds), sequence));
        }

        return results;
    }
}
