namespace Lora.Tokenization;

/// <summary>
/// The ids that <c>addSpecialTokens</c> puts around a single sequence: what tokenizer.json's
/// <c>post_processor</c> does (TemplateProcessing for Llama 2 / Llama 3.1's <c>&lt;|begin_of_text|&gt;</c>,
/// Bert/Roberta processing), possibly overridden by tokenizer_config.json's <c>add_bos_token</c>/<c>add_eos_token</c>.
/// </summary>
internal sealed record SpecialTokenTemplate(int[] Prefix, int[] Suffix)
{
    public static SpecialTokenTemplate Empty { get; } = new([], []);

    public int[] Apply(List<int> ids)
    {
        if (Prefix.Length == 0 && Suffix.Length == 0)
        {
            return [.. ids];
        }

        return [.. Prefix, .. ids, .. Suffix];
    }

    /// <summary>Config flags win where present: <c>add_bos_token</c> sets the prefix to bos or nothing,
    /// <c>add_eos_token</c> the suffix to eos or nothing (transformers' Llama/Gemma fast tokenizers rebuild the
    /// template from them the same way).</summary>
    public SpecialTokenTemplate Override(bool? addBos, int? bosId, bool? addEos, int? eosId) => new(
        addBos is null ? Prefix : addBos.Value && bosId is { } bos ? [bos] : [],
        addEos is null ? Suffix : addEos.Value && eosId is { } eos ? [eos] : []);

    public static SpecialTokenTemplate Parse(JsonFields? node)
    {
        if (node is null)
        {
            return Empty;
        }

        var type = node.Value.String("type");
        switch (type)
        {
            case "ByteLevel":
                return Empty; // only touches offsets
            case "Sequence":
                var result = Empty;
                foreach (var child in node.Value.Child("processors").Items())
                {
                    var inner = Parse(child);
                    result = new SpecialTokenTemplate([.. inner.Prefix, .. result.Prefix], [.. result.Suffix, .. inner.Suffix]);
                }

                return result;
            case "BertProcessing" or "RobertaProcessing":
                return new SpecialTokenTemplate([PairId(node.Value.Child("cls"))], [PairId(node.Value.Child("sep"))]);
            case "TemplateProcessing":
                return ParseTemplate(node.Value);
            default:
                throw node.Value.Child("type").Error($"post_processor type \"{type}\" is not supported");
        }
    }

    // "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]; "special_tokens": {"<s>": {"ids": [1]}}
    private static SpecialTokenTemplate ParseTemplate(JsonFields node)
    {
        var specials = node.Child("special_tokens");
        List<int> prefix = [], suffix = [];
        var seenSequence = false;
        foreach (var item in node.Child("single").Items())
        {
            if (item.Optional("Sequence") is not null)
            {
                seenSequence = true;
                continue;
            }

            var name = item.Child("SpecialToken").String("id");
            var ids = specials.Child(name).Child("ids").Items().Select(i => i.AsInt());
            (seenSequence ? suffix : prefix).AddRange(ids);
        }

        return new SpecialTokenTemplate([.. prefix], [.. suffix]);
    }

    // ["[CLS]", 101]
    private static int PairId(JsonFields pair)
    {
        var items = pair.Items().ToArray();
        return items.Length == 2 ? items[1].AsInt() : throw pair.Error("expected [token, id]");
    }
}
