namespace Lora.Data;

/// <summary>
/// A user template for Alpaca records: <c>{instruction}</c>, <c>{input}</c>, <c>{output}</c> are filled in (Python
/// <c>str.format</c> rules, <c>{{</c>/<c>}}</c> for braces). The prompt is the text before <c>{output}</c>; the target
/// is the output, any text after it, and eos. Without <c>{output}</c> the output follows the prompt directly, as in
/// Stanford Alpaca. An optional second template is used when the input is empty.
/// </summary>
internal sealed class CustomTemplate : PromptTemplate
{
    private readonly TemplateString _template;
    private readonly TemplateString? _noInput;

    public CustomTemplate(string template, string? noInputTemplate)
    {
        ArgumentNullException.ThrowIfNull(template);
        _template = TemplateString.Parse(template);
        _noInput = noInputTemplate is null ? null : TemplateString.Parse(noInputTemplate);
        if (!_template.Uses("instruction"))
            throw new LoraException("prompt template: {instruction} is missing, so the prompt would not depend on the record.");
    }

    public override string Name => "custom";

    public override IReadOnlyList<TemplateSegment> Render(DataRecord record, TemplateTokens tokens)
    {
        if (record is not AlpacaRecord alpaca)
            throw new LoraException($"{Where(record)}a custom prompt template renders alpaca records; use a chat template (llama2, chatml) for {record.GetType().Name}.");
        var template = alpaca.Input.Length == 0 && _noInput is not null ? _noInput : _template;
        var eos = tokens.RequireEos(Name);
        if (!template.Uses("output"))
            return [new(template.Format(alpaca).Before, false), new(alpaca.Output + eos, true)];
        var (prompt, target) = template.Format(alpaca, splitAt: "output");
        return [new(prompt, false), new(target + eos, true)];
    }
}
