using Lora.Generation;
using Lora.Models;
using Lora.Tokenization;

namespace WordNetLora.Data;

/// <summary>
/// What the pretrained base knows: for each fact, the corpus's own sentence openings that end where the answer goes
/// ("The opposite of cheap is", "A cat is a kind of") are completed greedily, and the fact counts as known when the
/// first generated word is the answer for enough of them (<c>split-data</c>'s <c>--train-min-openings</c> and
/// <c>--heldout-min-openings</c>). Instruction tuning can only teach
/// the model to answer what it already knows (Allen-Zhu &amp; Li 2023; fine-tuning on facts the base does not know
/// mostly teaches it to guess, Gekhman et al. 2024), so the instruction splits are drawn from the known facts.
/// </summary>
public static class KnowledgeProbe
{
    /// <summary>Openings per relation, each ending right before the answer; all are corpus templates' prefixes.</summary>
    private static readonly string[] AntonymOpenings =
    [
        "The opposite of {0} is", "One antonym of {0} is", "The word {0} means the reverse of",
        "Words with opposite meanings: {0} versus", "Saying {0} is the contrary of saying", "In English, {0} and",
    ];

    private static readonly string[] HypernymOpenings =
    [
        "{A0} {0} is a kind of", "The word {0} names a type of", "The category of {0} is",
        "Think of {a0} {0} as one sort of", "When people talk about {a0} {0}, they mean a particular",
    ];

    /// <summary>How many openings a fact of <paramref name="relation"/> is probed with.</summary>
    public static int OpeningsOf(Relation relation) => relation == Relation.Antonym ? AntonymOpenings.Length : HypernymOpenings.Length;

    /// <summary>For each fact, how many of its relation's openings the model completes with the answer.</summary>
    public static IReadOnlyList<int> Probe(CausalLM model, HfTokenizer tokenizer, IReadOnlyList<Fact> facts, int batchSize = 64)
    {
        var prompts = new List<string>();
        var owner = new List<int>();
        for (var i = 0; i < facts.Count; i++)
        {
            foreach (var opening in facts[i].Relation == Relation.Antonym ? AntonymOpenings : HypernymOpenings)
            {
                prompts.Add(Opening(opening, facts[i].Word));
                owner.Add(i);
            }
        }

        var completions = TextGenerator.Generate(model, tokenizer, prompts, new GenerationOptions { MaxNewTokens = 4 }, addSpecialTokens: true, batchSize);
        var hits = new int[facts.Count];
        for (var p = 0; p < prompts.Count; p++)
        {
            if (FirstWord(completions[p].Text) == facts[owner[p]].Answer)
                hits[owner[p]]++;
        }

        return hits;
    }

    private static string Opening(string template, string word) => template
        .Replace("{A0}", Capitalised(Fact.Article(word)), StringComparison.Ordinal)
        .Replace("{a0}", Fact.Article(word), StringComparison.Ordinal)
        .Replace("{0}", word, StringComparison.Ordinal);

    private static string Capitalised(string s) => char.ToUpperInvariant(s[0]) + s[1..];

    private static string FirstWord(string text)
    {
        var trimmed = text.TrimStart();
        var end = 0;
        while (end < trimmed.Length && char.IsLetter(trimmed[end]))
            end++;
        return trimmed[..end];
    }
}
