using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;
using Lora.Tokenization;

namespace WordNetLora.Data;

/// <summary>
/// Learns a byte-level BPE vocabulary from text and writes it as a Hugging Face <c>tokenizer.json</c> (plus
/// <c>tokenizer_config.json</c>) that <see cref="HfTokenizer"/> and transformers load alike. Text is first split
/// into runs of letters, single digits, runs of whitespace and runs of other characters (<see cref="SplitPattern"/>,
/// HF's <c>Split</c> pre-tokenizer, <c>Isolated</c>), so a word is the same token wherever it stands — after a space,
/// a newline or the colon of "### Response:" — and spaces are tokens of their own. Each piece is then mapped to
/// GPT-2's byte alphabet (HF's <c>ByteLevel</c> without its regex), so any text encodes. Merges are learned as in
/// Sennrich et al.'s BPE: repeatedly the most frequent adjacent pair (ties: the ordinally smaller), until the
/// vocabulary is full or no pair occurs twice. Ids: the 256 bytes (id = byte value), <c>&lt;s&gt;</c>,
/// <c>&lt;/s&gt;</c>, <c>&lt;pad&gt;</c>, then the merged tokens in merge order.
/// </summary>
public static class BpeTrainer
{
    /// <summary>The pre-tokenizer's split regex (a .NET and an Oniguruma regex alike).</summary>
    public const string SplitPattern = @"\p{L}+|\p{N}|\s+|[^\s\p{L}\p{N}]+";

    /// <summary>Special tokens after the 256 byte tokens: bos, eos, pad.</summary>
    public static readonly IReadOnlyList<string> SpecialTokens = ["<s>", "</s>", "<pad>"];

    /// <summary>Learns merges from <paramref name="texts"/> until the vocabulary has <paramref name="vocabSize"/>
    /// entries (byte and special tokens included). Returns the merges in order, as (left, right) in the byte alphabet.</summary>
    public static IReadOnlyList<(string Left, string Right)> Train(IEnumerable<string> texts, int vocabSize)
    {
        var split = new Regex(SplitPattern, RegexOptions.CultureInvariant);
        var wordCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            foreach (Match piece in split.Matches(text))
            {
                var key = ByteLevelAlphabet.Encode(piece.Value);
                wordCounts[key] = wordCounts.GetValueOrDefault(key) + 1;
            }
        }

        // Symbols as ints: 0..255 the byte characters, then one id per merge.
        var symbols = new List<string>();
        var symbolIds = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var c in ByteLevelAlphabet.Encode(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray()))
        {
            symbolIds[c.ToString()] = symbols.Count;
            symbols.Add(c.ToString());
        }

        var words = wordCounts.OrderBy(w => w.Key, StringComparer.Ordinal).Select(w => (Symbols: w.Key.Select(c => symbolIds[c.ToString()]).ToList(), Count: w.Value)).ToList();
        var pairCounts = new Dictionary<long, long>();
        var pairWords = new Dictionary<long, HashSet<int>>();
        for (var w = 0; w < words.Count; w++)
            Count(w, +1);

        var merges = new List<(string, string)>();
        var budget = vocabSize - 256 - SpecialTokens.Count;
        while (merges.Count < budget)
        {
            long best = -1, bestCount = 1;
            foreach (var (pair, count) in pairCounts)
            {
                if (count > bestCount || (count == bestCount && best >= 0 && Compare(pair, best) < 0))
                    (best, bestCount) = (pair, count);
            }

            if (best < 0)
                break; // no pair occurs twice
            var (left, right) = ((int)(best >> 32), (int)(best & 0xFFFFFFFF));
            var merged = symbols.Count;
            symbols.Add(symbols[left] + symbols[right]);
            merges.Add((symbols[left], symbols[right]));
            foreach (var w in pairWords[best].ToList())
            {
                Count(w, -1);
                var s = words[w].Symbols;
                for (var i = 0; i < s.Count - 1; i++)
                {
                    if (s[i] == left && s[i + 1] == right)
                    {
                        s[i] = merged;
                        s.RemoveAt(i + 1);
                    }
                }

                Count(w, +1);
            }
        }

        return merges;

        int Compare(long a, long b)
        {
            var byLeft = string.CompareOrdinal(symbols[(int)(a >> 32)], symbols[(int)(b >> 32)]);
            return byLeft != 0 ? byLeft : string.CompareOrdinal(symbols[(int)(a & 0xFFFFFFFF)], symbols[(int)(b & 0xFFFFFFFF)]);
        }

        void Count(int w, int sign)
        {
            var (s, n) = words[w];
            for (var i = 0; i < s.Count - 1; i++)
            {
                var pair = ((long)s[i] << 32) | (uint)s[i + 1];
                var total = pairCounts.GetValueOrDefault(pair) + sign * n;
                if (total == 0)
                {
                    pairCounts.Remove(pair);
                    pairWords.Remove(pair);
                    continue;
                }

                pairCounts[pair] = total;
                if (sign > 0)
                {
                    if (!pairWords.TryGetValue(pair, out var set))
                        pairWords[pair] = set = [];
                    set.Add(w);
                }
            }
        }
    }

    /// <summary>Writes <c>tokenizer.json</c> and <c>tokenizer_config.json</c> for <paramref name="merges"/> into
    /// <paramref name="directory"/>.</summary>
    public static void Write(string directory, IReadOnlyList<(string Left, string Right)> merges)
    {
        Directory.CreateDirectory(directory);
        var vocab = new List<string>();
        vocab.AddRange(ByteLevelAlphabet.Encode(Enumerable.Range(0, 256).Select(b => (byte)b).ToArray()).Select(c => c.ToString()));
        var firstMerged = vocab.Count + SpecialTokens.Count;
        var options = new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var stream = File.Create(Path.Combine(directory, "tokenizer.json")))
        using (var json = new Utf8JsonWriter(stream, options))
        {
            json.WriteStartObject();
            json.WriteString("version", "1.0");
            json.WriteNull("truncation");
            json.WriteNull("padding");
            json.WriteStartArray("added_tokens");
            for (var i = 0; i < SpecialTokens.Count; i++)
            {
                json.WriteStartObject();
                json.WriteNumber("id", 256 + i);
                json.WriteString("content", SpecialTokens[i]);
                json.WriteBoolean("single_word", false);
                json.WriteBoolean("lstrip", false);
                json.WriteBoolean("rstrip", false);
                json.WriteBoolean("normalized", false);
                json.WriteBoolean("special", true);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteNull("normalizer");
            json.WriteStartObject("pre_tokenizer");
            json.WriteString("type", "Sequence");
            json.WriteStartArray("pretokenizers");
            json.WriteStartObject();
            json.WriteString("type", "Split");
            json.WriteStartObject("pattern");
            json.WriteString("Regex", SplitPattern);
            json.WriteEndObject();
            json.WriteString("behavior", "Isolated");
            json.WriteBoolean("invert", false);
            json.WriteEndObject();
            json.WriteStartObject();
            json.WriteString("type", "ByteLevel");
            json.WriteBoolean("add_prefix_space", false);
            json.WriteBoolean("trim_offsets", true);
            json.WriteBoolean("use_regex", false);
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteStartObject("post_processor");
            json.WriteString("type", "TemplateProcessing");
            json.WriteStartArray("single");
            WriteSpecial(json, "<s>");
            WriteSequence(json, "A", 0);
            json.WriteEndArray();
            json.WriteStartArray("pair");
            WriteSpecial(json, "<s>");
            WriteSequence(json, "A", 0);
            WriteSequence(json, "B", 1);
            json.WriteEndArray();
            json.WriteStartObject("special_tokens");
            json.WriteStartObject("<s>");
            json.WriteString("id", "<s>");
            json.WriteStartArray("ids");
            json.WriteNumberValue(256);
            json.WriteEndArray();
            json.WriteStartArray("tokens");
            json.WriteStringValue("<s>");
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteStartObject("decoder");
            json.WriteString("type", "ByteLevel");
            json.WriteBoolean("add_prefix_space", false);
            json.WriteBoolean("trim_offsets", true);
            json.WriteBoolean("use_regex", false);
            json.WriteEndObject();
            json.WriteStartObject("model");
            json.WriteString("type", "BPE");
            json.WriteNull("dropout");
            json.WriteNull("unk_token");
            json.WriteNull("continuing_subword_prefix");
            json.WriteNull("end_of_word_suffix");
            json.WriteBoolean("fuse_unk", false);
            json.WriteBoolean("byte_fallback", false);
            json.WriteBoolean("ignore_merges", false);
            json.WriteStartObject("vocab");
            for (var i = 0; i < vocab.Count; i++)
                json.WriteNumber(vocab[i], i);
            for (var i = 0; i < merges.Count; i++)
                json.WriteNumber(merges[i].Left + merges[i].Right, firstMerged + i);
            json.WriteEndObject();
            json.WriteStartArray("merges");
            foreach (var (left, right) in merges)
            {
                json.WriteStartArray();
                json.WriteStringValue(left);
                json.WriteStringValue(right);
                json.WriteEndArray();
            }

            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteEndObject();
        }

        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), """
            {
              "bos_token": "<s>",
              "eos_token": "</s>",
              "pad_token": "<pad>",
              "add_bos_token": true,
              "add_eos_token": false,
              "model_max_length": 512,
              "tokenizer_class": "PreTrainedTokenizerFast",
              "clean_up_tokenization_spaces": false
            }

            """);
    }

    private static void WriteSpecial(Utf8JsonWriter json, string id)
    {
        json.WriteStartObject();
        json.WriteStartObject("SpecialToken");
        json.WriteString("id", id);
        json.WriteNumber("type_id", 0);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteSequence(Utf8JsonWriter json, string id, int typeId)
    {
        json.WriteStartObject();
        json.WriteStartObject("Sequence");
        json.WriteString("id", id);
        json.WriteNumber("type_id", typeId);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
