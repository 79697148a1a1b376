using Lora.Tokenization;

namespace Lora.Data;

/// <summary>
/// Turns records into <see cref="TokenizedExample"/>s, following Stanford Alpaca's <c>preprocess</c>: the template's
/// text is tokenised as source and as source + target, and the first <c>len(source ids)</c> labels are -100
/// (completion-only). Multi-turn chats do the same at each turn boundary, so only assistant turns are targets.
/// Examples longer than <see cref="DataOptions.MaxLength"/> are cut from the end; an example left with no target
/// token is dropped. Both are counted in <see cref="Stats"/>.
/// </summary>
public sealed class ExampleTokenizer
{
    private readonly HfTokenizer _tokenizer;
    private readonly DataOptions _options;
    private readonly TemplateTokens _tokens;

    public ExampleTokenizer(HfTokenizer tokenizer, DataOptions options)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxLength < 2)
            throw new LoraException($"max_length must be at least 2 (one token predicts the next), got {options.MaxLength}.");
        _tokenizer = tokenizer;
        _options = options;
        _tokens = TemplateTokens.From(tokenizer);
    }

    /// <summary>Counts so far; complete once the enumeration of <see cref="Tokenize(IEnumerable{DataRecord})"/> ends.</summary>
    public DatasetStats Stats { get; } = new();

    /// <summary>The examples of <paramref name="records"/>, lazily; plain-text lines become max_length blocks.</summary>
    public IEnumerable<TokenizedExample> Tokenize(IEnumerable<DataRecord> records)
    {
        var block = new List<int>();
        var blockStarted = false;
        foreach (var record in records)
        {
            Stats.Records++;
            if (record is TextLine line)
            {
                if (!blockStarted)
                {
                    block.AddRange(_tokenizer.Encode(string.Empty, addSpecialTokens: true)); // BOS once, at the start of the file
                    blockStarted = true;
                }

                block.AddRange(_tokenizer.Encode(line.Text, addSpecialTokens: false));
                while (block.Count >= _options.MaxLength)
                {
                    yield return Keep(TokenizedExample.FromIds([.. block.GetRange(0, _options.MaxLength)]));
                    block.RemoveRange(0, _options.MaxLength);
                }

                continue;
            }

            if (Tokenize(record) is { } example)
                yield return example;
        }

        if (block.Count >= 2)
            yield return Keep(TokenizedExample.FromIds([.. block]));
    }

    /// <summary>One record as an example, or null when it was dropped (counted in <see cref="Stats"/>).
    /// Use <see cref="Tokenize(IEnumerable{DataRecord})"/> for plain-text lines.</summary>
    public TokenizedExample? Tokenize(DataRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var example = record switch
        {
            TokenizedRecord tokenized => tokenized.Example,
            TextRecord text => Document(text.Text),
            TextLine => throw new ArgumentException("plain-text lines are cut into blocks by Tokenize(IEnumerable<DataRecord>).", nameof(record)),
            _ => Templated(record),
        };

        if (example.InputIds.Length > _options.MaxLength)
        {
            Stats.Truncated++;
            example = new TokenizedExample(example.InputIds[.._options.MaxLength], example.Labels[.._options.MaxLength]);
        }

        if (example.PredictedTokens == 0)
        {
            Stats.DroppedNoTarget++;
            return null;
        }

        return Keep(example);
    }

    private TokenizedExample Keep(TokenizedExample example)
    {
        Stats.Examples++;
        Stats.Tokens += example.InputIds.Length;
        Stats.TargetTokens += example.PredictedTokens;
        return example;
    }

    /// <summary>A language-modelling document: special tokens as the tokenizer adds them, then eos; all tokens count.</summary>
    private TokenizedExample Document(string text)
    {
        var ids = _tokenizer.Encode(text, addSpecialTokens: true);
        if (_tokenizer.EosTokenId is { } eos && (ids.Length == 0 || ids[^1] != eos))
            ids = [.. ids, eos];
        return TokenizedExample.FromIds(ids);
    }

    private TokenizedExample Templated(DataRecord record)
    {
        var template = _options.Template ?? (record is ChatRecord ? PromptTemplate.ChatMl : PromptTemplate.Alpaca);
        var segments = template.Render(record, _tokens);
        var addSpecial = template.AddSpecialTokens;
        if (_options.TrainOnPrompt)
            return TokenizedExample.FromIds(_tokenizer.Encode(string.Concat(segments.Select(s => s.Text)), addSpecial));

        // Encode each growing prefix (source, source + target, ...): the tokens a segment adds take its role.
        var text = string.Empty;
        int[] ids = [];
        var isTarget = new List<bool>();
        var mismatch = false;
        foreach (var segment in segments)
        {
            text += segment.Text;
            var next = _tokenizer.Encode(text, addSpecial);
            mismatch |= next.Length < ids.Length || !next.AsSpan(0, ids.Length).SequenceEqual(ids);
            while (isTarget.Count < next.Length)
                isTarget.Add(segment.IsTarget);
            ids = next;
        }

        if (mismatch)
            Stats.PromptBoundaryMismatches++;
        var labels = new int[ids.Length];
        for (var i = 0; i < ids.Length; i++)
            labels[i] = isTarget[i] ? ids[i] : TokenizedExample.IgnoreIndex;
        return new TokenizedExample(ids, labels);
    }
}
