using System.Text;

namespace Lora.Data;

/// <summary>
/// A template string with <c>{instruction}</c>, <c>{input}</c> and <c>{output}</c> placeholders, parsed once and
/// filled in one pass like Python's <c>str.format_map</c> (so a value containing "{input}" is not expanded again).
/// <c>{{</c> and <c>}}</c> are literal braces.
/// </summary>
internal sealed class TemplateString
{
    public static readonly string[] Placeholders = ["instruction", "input", "output"];

    private readonly List<(string? Literal, string? Placeholder)> _parts;

    private TemplateString(List<(string?, string?)> parts) => _parts = parts;

    /// <exception cref="LoraException">An unknown placeholder or an unmatched brace, named in the message.</exception>
    public static TemplateString Parse(string template)
    {
        var parts = new List<(string?, string?)>();
        var literal = new StringBuilder();
        for (var i = 0; i < template.Length; i++)
        {
            var c = template[i];
            if ((c == '{' || c == '}') && i + 1 < template.Length && template[i + 1] == c)
            {
                literal.Append(c);
                i++;
            }
            else if (c == '{')
            {
                var close = template.IndexOf('}', i + 1);
                if (close < 0)
                    throw new LoraException($"prompt template: unmatched '{{' at character {i} (write '{{{{' for a literal brace).");
                var name = template[(i + 1)..close];
                if (!Placeholders.Contains(name))
                    throw new LoraException($"prompt template: unknown placeholder {{{name}}} (known: {{instruction}}, {{input}}, {{output}}).");
                if (literal.Length > 0)
                    parts.Add((literal.ToString(), null));
                literal.Clear();
                parts.Add((null, name));
                i = close;
            }
            else if (c == '}')
            {
                throw new LoraException($"prompt template: unmatched '}}' at character {i} (write '}}}}' for a literal brace).");
            }
            else
            {
                literal.Append(c);
            }
        }

        if (literal.Length > 0)
            parts.Add((literal.ToString(), null));
        return new TemplateString(parts);
    }

    public bool Uses(string placeholder) => _parts.Any(p => p.Placeholder == placeholder);

    /// <summary>The text with placeholders filled; with <paramref name="splitAt"/>, the text before and from it.</summary>
    public (string Before, string After) Format(AlpacaRecord record, string? splitAt = null)
    {
        var before = new StringBuilder();
        var after = new StringBuilder();
        var current = before;
        foreach (var (literal, placeholder) in _parts)
        {
            if (placeholder is not null && placeholder == splitAt)
                current = after;
            current.Append(literal ?? placeholder switch
            {
                "instruction" => record.Instruction,
                "input" => record.Input,
                _ => record.Output,
            });
        }

        return (before.ToString(), after.ToString());
    }
}
