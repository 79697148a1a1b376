namespace Lora.Data;

/// <summary>
/// Stanford Alpaca's prompt (tatsu-lab/stanford_alpaca <c>train.py</c>, <c>PROMPT_DICT</c>), byte for byte:
/// <see cref="PromptInput"/> when the input is non-empty, <see cref="PromptNoInput"/> when it is <c>""</c>. The
/// target is <c>output + eos_token</c>, appended with no separator.
/// </summary>
internal sealed class AlpacaTemplate : PromptTemplate
{
    public const string PromptInput =
        "Below is an instruction that describes a task, paired with an input that provides further context. " +
        "Write a response that appropriately completes the request.\n\n" +
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:";

    public const string PromptNoInput =
        "Below is an instruction that describes a task. " +
        "Write a response that appropriately completes the request.\n\n" +
        "### Instruction:\n{instruction}\n\n### Response:";

    private static readonly TemplateString Input = TemplateString.Parse(PromptInput);
    private static readonly TemplateString NoInput = TemplateString.Parse(PromptNoInput);

    public override string Name => "alpaca";

    /// <summary>The source text of a record (Python's <c>str.format_map</c> on the chosen prompt).</summary>
    public static string Prompt(AlpacaRecord record) => (record.Input.Length == 0 ? NoInput : Input).Format(record).Before;

    public override IReadOnlyList<TemplateSegment> Render(DataRecord record, TemplateTokens tokens)
    {
        if (record is not AlpacaRecord alpaca)
            throw new LoraException($"{Where(record)}the alpaca template renders alpaca records; use a chat template (llama2, chatml) for {record.GetType().Name}.");
        return [new(Prompt(alpaca), false), new(alpaca.Output + tokens.RequireEos(Name), true)];
    }
}
