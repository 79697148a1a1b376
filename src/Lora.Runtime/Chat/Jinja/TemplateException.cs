namespace Lora.Chat.Jinja;

/// <summary>A chat template that does not parse, fails while rendering, or calls <c>raise_exception(message)</c>
/// (transformers' <c>TemplateError</c>). The message names the template's origin and line.</summary>
public sealed class TemplateException : LoraException
{
    public TemplateException(string message, int line, bool raisedByTemplate = false)
        : base(message)
    {
        Line = line;
        RaisedByTemplate = raisedByTemplate;
    }

    /// <summary>1-based line in the template source (0 when unknown).</summary>
    public int Line { get; }

    /// <summary>True when the template itself called <c>raise_exception</c> (its message is the template's own).</summary>
    public bool RaisedByTemplate { get; }
}
