using Lora.Tokenization;

namespace Lora.Data;

/// <summary>
/// The whole data path in one call: read a file (<see cref="DatasetReader"/>), render and tokenise it
/// (<see cref="ExampleTokenizer"/>) and keep the examples in memory as token ids, which the samplers need for
/// shuffling and length grouping. The file itself is streamed, never held as text.
/// </summary>
public sealed record InstructionDataset(IReadOnlyList<TokenizedExample> Examples, DatasetStats Stats)
{
    public static InstructionDataset Load(string path, HfTokenizer tokenizer, DataOptions options)
    {
        var tokenizerStep = new ExampleTokenizer(tokenizer, options);
        var examples = tokenizerStep.Tokenize(DatasetReader.Read(path, options.Format)).ToList();
        if (examples.Count == 0)
            throw new LoraException($"{path}: no examples left after tokenisation ({tokenizerStep.Stats}).");
        return new InstructionDataset(examples, tokenizerStep.Stats);
    }

    /// <summary>Token count of each example, for <see cref="BatchSampler"/>'s length grouping.</summary>
    public IReadOnlyList<int> Lengths => Examples.Select(e => e.InputIds.Length).ToArray();
}
